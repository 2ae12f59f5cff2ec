"""kNN protocols turned into extraction views: per-scale input sizes, transforms and ``input_res``.

A kNN protocol (``tasks/knn/*.yaml``) names its scales and how each scale becomes an image tensor. This module turns
(protocol, dataset, backbone family) into a list of :class:`ScaleEntry` (one per scale entry, in protocol order, with
the official result key ``"{native}->{target}({final})"``) sharing de-duplicated :class:`~satbench.eval.extract.View`
objects: EuroSAT's 0.25 and 0.125 scales are the same 16-px input, so they share one view (one forward pass) and still
count as two entries in the average.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import transforms as T

from satbench.models.backbones import FAMILIES, get_family
from satbench.models.backbones.base import check_input_size
from satbench.data.scene import SceneDataset
from satbench.data.transforms import knn_input_size, knn_resize_size, knn_transform, knn_transform_spec
from satbench.errors import InputSizeError, ProtocolError
from satbench.io.hashing import canonical_hash
from satbench.data.normalization import Normalization
from satbench.data.normalization_choice import choose_normalization
from satbench.config.protocols import Protocol
from satbench.eval.extract import View
from satbench.eval.knn_settings import KnnSettings
from satbench.eval.size_rules import CropAfter, fitted_size, model_patch

#: Scale-MAE's own kNN protocol: the one satbench uses for Scale-MAE by default (``satbench extract``'s input_res).
#: ``scalemae-knn-v1`` (4-decimal EuroSAT statistics only) stays loadable for the records made with it.
SCALEMAE_KNN_PROTOCOL = "scalemae-knn-v2"
TRANSFORMS = ("resize-center-crop", "native-area")


@dataclass
class ScaleEntry:
    """One scale of the protocol: sizes, the official result key and the view that produces its features."""

    scale: float
    target: int  # round(scale * native), before flooring
    size: int  # final input size
    resize: Optional[int]  # short-side resize before the centre crop (resize-center-crop only)
    key: str  # "{native}->{target}({size})", as the official results JSON
    view: View
    protocol_size: Optional[int] = None  # the protocol's size, when size_rule changed it (satbench.eval.size_rules)
    size_rule: Optional[str] = None

    def as_dict(self) -> dict[str, Any]:
        out = {"scale": self.scale, "key": self.key, "target": self.target, "size": self.size,
               "resize": self.resize, "view": self.view.key, "input_res": self.view.input_res}
        if self.protocol_size is not None:
            out.update(protocol_size=self.protocol_size, size_rule=self.size_rule)
        return out


class NativeAreaTransform:
    """Scale-MAE's eval transform: (optional square resize at native size) -> ToTensor -> ``F.interpolate(mode='area')``."""

    def __init__(self, size: int, native_resize: Optional[int] = None) -> None:
        self.size = size
        self.native_resize = native_resize
        self._pre = T.Resize((native_resize, native_resize)) if native_resize else None
        self._to_tensor = T.ToTensor()

    def __call__(self, img: Any) -> torch.Tensor:
        if self._pre is not None:
            img = self._pre(img)
        x = self._to_tensor(img)
        return F.interpolate(x.unsqueeze(0), size=(self.size, self.size), mode="area").squeeze(0)

    def spec(self) -> dict[str, Any]:
        return {"native_resize": self.native_resize, "native_resize_interpolation": "bilinear-antialias"
                if self.native_resize else None, "to_tensor": True, "area_resize": self.size}


def knn_settings(protocol: Protocol, settings: Optional[KnnSettings] = None) -> KnnSettings:
    """The typed settings of a kNN protocol: ``settings`` when the caller parsed them already (they are parsed once
    per run and passed down), else parsed now (strict: one line naming the file and the key)."""
    return settings if settings is not None else protocol.settings(KnnSettings)


def protocol_normalization(protocol: Protocol, dataset: SceneDataset, override: Optional[Normalization] = None,
                           *, settings: Optional[KnnSettings] = None) -> Normalization:
    """The normalisation a kNN protocol prescribes for ``dataset`` (``override`` wins: ``--normalization``); the
    decision is :func:`satbench.data.normalization_choice.choose_normalization`."""
    st = knn_settings(protocol, settings)
    table = {k: (e.mean, e.std) for k, e in st.normalization_table.items()}
    return choose_normalization(st.normalization, where=f"protocol {protocol.name}", dataset_norm=dataset.normalization,
                                dataset_name=dataset.protocol_name if st.normalization == "table" else dataset.name,
                                table=table, override=override)


def _family_and_model(backbone: Any, model: Optional[nn.Module]) -> tuple[str, Optional[nn.Module]]:
    """``backbone`` is a family name, or a :class:`~satbench.models.weights.LoadedModel` (whose model is then checked)."""
    if isinstance(backbone, str):
        return backbone, model
    card, module = getattr(backbone, "card", None), getattr(backbone, "model", None)
    if card is None or not isinstance(module, nn.Module):
        raise TypeError(f"build_scale_entries: expected a family name or a LoadedModel, got {type(backbone).__name__}")
    return card.family, model if model is not None else module


def check_entry_sizes(entries: list[ScaleEntry], model: nn.Module, protocol: Protocol, dataset: SceneDataset) -> None:
    """Refuse (before any image is decoded) every scale whose input size ``model`` cannot take."""
    for e in entries:
        try:
            check_input_size(model, e.size, e.size)
        except InputSizeError as exc:
            native = dataset.native_size
            raise InputSizeError(f"protocol {protocol.name}: scale {e.scale:g} of {dataset.name} (native {native} px) "
                                 f"asks for {e.size} x {e.size} px inputs, which the model cannot take: {exc}") from None


def build_scale_entries(protocol: Protocol, dataset: SceneDataset, family: Any, *, model: Optional[nn.Module] = None,
                        settings: Optional[KnnSettings] = None) -> list[ScaleEntry]:
    """The per-scale entries of ``protocol`` on ``dataset`` for a backbone of ``family`` (views de-duplicated).

    ``family`` is the family name, or the :class:`~satbench.models.weights.LoadedModel` itself; with the model (that, or
    ``model=``) every scale's input size is checked against the backbone's ``check_input_size`` here, before any image
    is decoded (``--scales 3`` on a 256-px dataset is 768 px, beyond SatDINO's official interpolation).
    ``settings``: the protocol's :class:`KnnSettings` when the caller parsed them already.
    """
    family, model = _family_and_model(family, model)
    st = knn_settings(protocol, settings)
    fam = get_family(family)
    if st.input_res not in fam.input_res_policies:
        takers = [f.name for f in FAMILIES.values() if f.takes_input_res]
        raise ProtocolError(f"protocol {protocol.name} sets input_res {st.input_res!r}, but {fam.name} backbones take no "
                            f"input resolution (only: {', '.join(takers)})")
    policy, multiple, ratio, transform = st.input_res, st.size_multiple, st.ratio, st.transform
    native_resize = st.native_resize.get(dataset.protocol_name)
    native = dataset.native_size
    size_rule = st.size_rule
    patch = model_patch(model)
    views: dict[str, View] = {}
    out: list[ScaleEntry] = []
    for s in st.scales:
        target, protocol_size = knn_input_size(native, s, multiple)
        size = fitted_size(protocol_size, patch, size_rule, f"protocol {protocol.name}")
        base = protocol_size if size_rule == "crop" else size
        res = fam.input_res(policy, size)
        if transform == "resize-center-crop":
            tf: Any = knn_transform(base, ratio)
            spec = {"kind": "satdino-knn", **knn_transform_spec(base, ratio)}
            resize: Optional[int] = knn_resize_size(base, ratio)
        else:
            tf = NativeAreaTransform(base, native_resize)
            spec = {"kind": "scalemae-knn", **tf.spec()}
            resize = None
        if size != base:
            tf, spec = CropAfter(tf, size), {**spec, "size_rule": "crop", "patch_crop": size}
        vkey = f"{spec['kind']}-{size}" + (f"-res{res:g}" if res is not None else "") + f"-{canonical_hash(spec)[:6]}"
        view = views.setdefault(vkey, View(vkey, tf, spec, res))
        changed = size != protocol_size
        out.append(ScaleEntry(s, target, size, resize, f"{native}->{target}({size})", view,
                              protocol_size if changed else None, size_rule if changed else None))
    if model is not None:
        check_entry_sizes(out, model, protocol, dataset)
    return out
