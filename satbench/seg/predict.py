"""Predictions and PNG overlays (image | ground truth | prediction) from a trained segmentor.

Weights come from the weights-only ``final_weights.pth`` a ``satbench run --task segmentation`` writes
(read with ``torch.load(weights_only=True)``); an mmengine ``iter_N.pth`` checkpoint needs
``trust_checkpoint=True`` (it pickles non-tensor objects).

The config comes from the run's ``satbench_seg_run.json`` (data: the settings the config is rebuilt from, out of
the shipped templates, see :mod:`satbench.seg.run_args`). A Python config is code (mmengine executes it), so
:func:`resolve_config` executes one only with ``trust_config=True`` (CLI ``--trust-config``) -- except a
``satbench_seg_config.py`` byte-identical to the config rebuilt from the ``satbench_seg_run.json`` beside it,
which is then not executed but replaced by that rebuild.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from satbench.runtime import mmcv_compat

mmcv_compat.install()

from mmengine.config import Config  # noqa: E402

from satbench.models.checkpoints import read_checkpoint, state_dict_problems  # noqa: E402
from satbench.data.images import IMAGE_EXTENSIONS  # noqa: E402
from satbench.errors import DataError, SatbenchError, WeightsError  # noqa: E402
from satbench.io.atomic import atomic_write  # noqa: E402
from satbench.seg.run_args import RUN_ARGS_NAME, make_config, read_run_args  # noqa: E402
from satbench.seg.untrusted import read_small_file  # noqa: E402

MAX_PY_CONFIG_BYTES = 4 << 20


def resolve_config(config: str | os.PathLike | Config, *, trust_config: bool = False) -> Config:
    """The segmentor config: a :class:`Config`, a ``satbench_seg_run.json`` (rebuilt, nothing executed) or a
    Python config (executed only with ``trust_config``, unless it is exactly the rebuild of the run JSON beside it)."""
    if isinstance(config, Config):
        return config.copy()
    path = Path(config)
    if not os.path.lexists(path):
        raise SatbenchError(f"config {path} does not exist")
    if path.suffix == ".json":
        return make_config(read_run_args(path))[0]
    if trust_config:
        return Config.fromfile(str(path))
    beside = path.parent / RUN_ARGS_NAME
    if os.path.lexists(beside):
        rebuilt = make_config(read_run_args(beside))[0]
        text = read_small_file(path, MAX_PY_CONFIG_BYTES, what="the config")
        if text == rebuilt.pretty_text.encode():
            return rebuilt
        raise SatbenchError(f"{path} differs from the config satbench rebuilds from {beside} (edited, or from "
                            f"another run) and a Python config is code: pass --trust-config to execute it, or use "
                            f"{beside}")
    raise SatbenchError(f"{path} is an mmengine config, which runs code when loaded (Python, custom_imports): "
                        f"seg-predict loads it only with --trust-config (a `satbench run --task segmentation` work "
                        f"dir has {RUN_ARGS_NAME}, read as data)")


def _read_weights(path: Path, trust_checkpoint: bool) -> dict[str, Any]:
    if not path.is_file():
        raise WeightsError(f"segmentor weights {path} do not exist")
    obj = read_checkpoint(path, trust_checkpoint=trust_checkpoint,
                          what="weights-only segmentor file (use the run's final_weights.pth, or pass "
                               "--trust-checkpoint for an mmengine checkpoint)")
    if not isinstance(obj, dict) or not isinstance(obj.get("state_dict"), dict):
        raise WeightsError(f"{path}: expected a dict with a 'state_dict' entry")
    return obj


def load_segmentor(config: str | os.PathLike | Config, weights: str | os.PathLike, *, device: str = "cpu",
                   trust_checkpoint: bool = False, trust_config: bool = False) -> torch.nn.Module:
    """Build the segmentor of ``config`` (see :func:`resolve_config`) and load ``weights`` strictly (the backbone
    is not re-downloaded)."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS, MODELS

    cfg = resolve_config(config, trust_config=trust_config)
    obj = _read_weights(Path(weights), trust_checkpoint)
    cfg.model.backbone.weights = "random"  # every tensor comes from ``weights`` below
    cfg.model.backbone.trust_checkpoint = False  # nothing is loaded by the backbone itself
    cfg.model.train_cfg = None
    init_default_scope(cfg.get("default_scope", "mmseg"))
    model = MODELS.build(cfg.model)
    sd = obj["state_dict"]
    own = model.state_dict()
    problems = state_dict_problems(own, sd)
    if problems:
        raise WeightsError(f"{weights}: does not fit the config's segmentor: " + "; ".join(problems))
    model.load_state_dict(sd, strict=True)
    meta = (obj.get("meta") or {}).get("dataset_meta")
    if not meta:
        meta = dict(DATASETS.get(cfg.train_dataloader.dataset.type).METAINFO)
    model.dataset_meta = meta
    model.cfg = cfg
    return model.to(device).eval()


def predict(model: torch.nn.Module, images: Sequence[str | os.PathLike]) -> list[np.ndarray]:
    """Class-index maps ``[H, W]`` (int64, at the image's size) for image files, via the test pipeline."""
    from mmseg.apis import inference_model

    out = []
    for img in images:
        res = inference_model(model, str(img))
        out.append(res.pred_sem_seg.data[0].cpu().numpy().astype(np.int64))
    return out


def read_label(path: Path, reduce_zero_label: bool = True) -> np.ndarray:
    """A label PNG as the configs read it: with ``reduce_zero_label`` 0 -> 255 (ignore), v -> v - 1."""
    from PIL import Image

    lab = np.asarray(Image.open(path)).astype(np.int64)
    if reduce_zero_label:
        lab = np.where(lab == 0, 255, lab - 1)
    return lab


def _colorize(lab: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    pal = np.zeros((256, 3), dtype=np.uint8)
    pal[: len(palette)] = np.asarray(palette, dtype=np.uint8)
    return pal[np.clip(lab, 0, 255)]


def write_overlays(model: torch.nn.Module, images: Sequence[Path], out_dir: str | os.PathLike, *,
                   ann_dir: Optional[Path] = None, alpha: float = 0.5) -> list[Path]:
    """One PNG per image: image | ground truth (if ``ann_dir`` holds a same-name label) | prediction overlay."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = model.dataset_meta
    palette, classes = meta["palette"], meta["classes"]
    preds = predict(model, images)
    written = []
    for img_path, pred in zip(images, preds):
        img = np.asarray(Image.open(img_path).convert("RGB"))
        panels = [("image (channels as stored)", img)]
        lab_path = Path(ann_dir) / Path(img_path).name if ann_dir is not None else None
        if lab_path is not None and lab_path.is_file():
            panels.append(("ground truth", _colorize(read_label(lab_path), palette)))
        overlay = (img * (1 - alpha) + _colorize(pred, palette) * alpha).astype(np.uint8)
        panels.append(("prediction", overlay))
        fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.4))
        for ax, (title, arr) in zip(np.atleast_1d(axes), panels):
            ax.imshow(arr)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        handles = [plt.Rectangle((0, 0), 1, 1, color=np.asarray(c) / 255) for c in palette]
        fig.legend(handles, classes, loc="lower center", ncol=min(len(classes), 7), fontsize=7, frameon=False)
        fig.suptitle(Path(img_path).name, fontsize=9)
        target = out_dir / f"{Path(img_path).stem}_overlay.png"
        atomic_write(target, lambda fh: fig.savefig(fh, format="png", dpi=80))
        plt.close(fig)
        written.append(target)
    return written


def list_images(spec: str | os.PathLike, limit: Optional[int] = None) -> list[Path]:
    """A folder (sorted ``*.png``/``*.jpg``/``*.tif``) or one image file."""
    p = Path(spec)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise DataError(f"--images {p}: no such file or folder")
    files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataError(f"--images {p}: no .png/.jpg/.tif images in this folder")
    return files[:limit] if limit else files

