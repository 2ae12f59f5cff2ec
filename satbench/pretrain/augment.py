"""Multi-crop augmentations of SatDINO (``satdino/view_augmentations.py``) and plain DINO.

* ``satdino``: 2 global views (one shared RandomResizedCrop, scale ``global_crops_scale``) and
  ``local_crops_number`` local views; local view ``i`` draws its area fraction from bin ``i`` of the local
  scale range split into equal bins (0.02 wide for 10 crops).
* ``dino2``: the same metadata-aware pipeline, every local view drawing from the whole local range.
* ``dino``: stock DINO (crop inside each Compose, no metadata change, no GSD loss possible).

Source images: global 1 <- ``images[1]``, global 2 <- ``images[2]``, every local <- ``images[0]``.
Per-view GSD (metadata-aware types): ``gsd / ((size / w + size / h) / 2)`` for a crop box ``h x w``
resized to ``size``. Output order: the 2 global views, then the locals.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

from PIL import Image, ImageFilter, ImageOps
from torch import Tensor
from torchvision import transforms
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from satbench.data.normalization import Normalization

AUGMENTATION_TYPES = ("satdino", "dino2", "dino")


class GaussianBlur:
    """DINO's PIL Gaussian blur, applied with probability ``p``, radius ~ U(radius_min, radius_max)."""

    def __init__(self, p: float = 0.5, radius_min: float = 0.1, radius_max: float = 2.0) -> None:
        self.prob = p
        self.radius_min = radius_min
        self.radius_max = radius_max

    def __call__(self, img: Image.Image) -> Image.Image:
        do_it = random.random() <= self.prob
        if not do_it:
            return img
        return img.filter(ImageFilter.GaussianBlur(radius=random.uniform(self.radius_min, self.radius_max)))


class Solarization:
    """DINO's PIL solarisation (threshold 128), applied with probability ``p``."""

    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, img: Image.Image) -> Image.Image:
        if random.random() < self.p:
            return ImageOps.solarize(img)
        return img


class MetaRandomResizedCrop(transforms.RandomResizedCrop):
    """RandomResizedCrop that also returns the view's GSD: ``gsd / ((size/w + size/h) / 2)``."""

    def crop_with_gsd(self, img: Image.Image, gsd: float) -> tuple[Image.Image, float, tuple[int, int, int, int]]:
        i, j, h, w = self.get_params(img, self.scale, self.ratio)
        out = TF.resized_crop(img, i, j, h, w, self.size, self.interpolation, antialias=self.antialias)
        size_h, size_w = self.size
        scale_factor = (size_w / w + size_h / h) / 2
        return out, gsd / scale_factor, (i, j, h, w)


def local_scale_bins(scale: Sequence[float], n: int) -> list[tuple[float, float]]:
    """``n`` equal consecutive bins of the local scale range (``satdino`` stratified view sampling)."""
    lo, hi = float(scale[0]), float(scale[1])
    width = (hi - lo) / n
    return [(lo + i * width, lo + (i + 1) * width) for i in range(n)]


class MultiCropAugmentation:
    """Turn 3 source images (+ metadata with 3 entries per key) into the multi-crop views.

    ``__call__(images, meta) -> (crops, meta_out)``: ``crops`` is a list of ``2 + local_crops_number``
    normalised tensors; ``meta_out`` maps every metadata key to a list with one value per view (only
    ``gsd`` changes; other keys are copied from the view's source image).
    """

    def __init__(self, kind: str, normalization: Normalization, global_crops_scale: Sequence[float] = (0.25, 1.0),
                 local_crops_scale: Sequence[float] = (0.05, 0.25), local_crops_number: int = 10,
                 global_crops_size: int = 224, local_crops_size: int = 96) -> None:
        if kind not in AUGMENTATION_TYPES:
            raise ValueError(f"augmentation_type must be one of {AUGMENTATION_TYPES}, got {kind!r}")
        self.kind = kind
        self.local_crops_number = local_crops_number
        bicubic = InterpolationMode.BICUBIC
        flip_and_color_jitter = transforms.Compose([
            transforms.RandomHorizontalFlip(p=0.5),
            transforms.RandomApply([transforms.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)],
                                   p=0.8),
            transforms.RandomGrayscale(p=0.2),
        ])
        normalize = transforms.Compose([transforms.ToTensor(),
                                        transforms.Normalize(normalization.mean, normalization.std)])
        post_global1 = [flip_and_color_jitter, GaussianBlur(1.0), normalize]
        post_global2 = [flip_and_color_jitter, GaussianBlur(0.1), Solarization(0.2), normalize]
        post_local = [flip_and_color_jitter, GaussianBlur(p=0.5), normalize]
        if kind == "dino":
            g_rrc = transforms.RandomResizedCrop(global_crops_size, scale=tuple(global_crops_scale),
                                                 interpolation=bicubic)
            l_rrc = transforms.RandomResizedCrop(local_crops_size, scale=tuple(local_crops_scale),
                                                 interpolation=bicubic)
            self.global_transfo1 = transforms.Compose([g_rrc, *post_global1])
            self.global_transfo2 = transforms.Compose([g_rrc, *post_global2])
            self.local_transfo = transforms.Compose([l_rrc, *post_local])
            return
        self.global_crop = MetaRandomResizedCrop(global_crops_size, scale=tuple(global_crops_scale),
                                                 interpolation=bicubic)
        if kind == "satdino":
            self.local_crops = [MetaRandomResizedCrop(local_crops_size, scale=b, interpolation=bicubic)
                                for b in local_scale_bins(local_crops_scale, local_crops_number)]
        else:
            one = MetaRandomResizedCrop(local_crops_size, scale=tuple(local_crops_scale), interpolation=bicubic)
            self.local_crops = [one] * local_crops_number
        self.global_transfo1 = transforms.Compose(post_global1)
        self.global_transfo2 = transforms.Compose(post_global2)
        self.local_transfo = transforms.Compose(post_local)

    @property
    def n_views(self) -> int:
        return 2 + self.local_crops_number

    def __call__(self, images: Sequence[Image.Image], meta: dict[str, Sequence[Any]] | None = None
                 ) -> tuple[list[Tensor], dict[str, list[Any]]]:
        sources = [1, 2] + [0] * self.local_crops_number
        if self.kind == "dino":
            crops = [self.global_transfo1(images[1]), self.global_transfo2(images[2])]
            crops += [self.local_transfo(images[0]) for _ in range(self.local_crops_number)]
            out_meta = {k: [v[s] for s in sources] for k, v in (meta or {}).items()}
            return crops, out_meta
        if meta is None or "gsd" not in meta:
            raise ValueError(f"augmentation_type {self.kind!r} needs per-image metadata with a 'gsd' entry")
        gsds: list[float] = []
        crops = []
        img, g, _ = self.global_crop.crop_with_gsd(images[1], float(meta["gsd"][1]))
        crops.append(self.global_transfo1(img))
        gsds.append(g)
        img, g, _ = self.global_crop.crop_with_gsd(images[2], float(meta["gsd"][2]))
        crops.append(self.global_transfo2(img))
        gsds.append(g)
        for rrc in self.local_crops:
            img, g, _ = rrc.crop_with_gsd(images[0], float(meta["gsd"][0]))
            crops.append(self.local_transfo(img))
            gsds.append(g)
        out_meta: dict[str, list[Any]] = {k: [v[s] for s in sources] for k, v in meta.items() if k != "gsd"}
        out_meta["gsd"] = gsds
        return crops, out_meta
