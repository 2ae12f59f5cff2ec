"""Segmentation configs: the shipped mmseg configs in ``tasks/segmentation/`` filled in for one model.

:func:`build_config` loads ``upernet_<dataset>_<crop>.py`` with mmengine and rewrites the model-dependent
values (backbone name/weights/options, tapped blocks, channel widths, the card's normalisation x 255) and
the run-dependent ones (data root, batch split over processes, shortened schedule). :func:`write_config`
writes it as a complete runnable mmseg config (``custom_imports`` included) for mmseg's own tools.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from . import mmcv_compat

mmcv_compat.install()

from mmengine.config import Config  # noqa: E402

from ..errors import DataError, ProtocolError, SatbenchError, UnknownNameError, close_matches  # noqa: E402
from ..io import atomic_write_bytes  # noqa: E402
from ..resources import tasks_dir  # noqa: E402
from .backbone import default_out_indices, resolve_card  # noqa: E402

CROPS = (224, 512)
RECIPE_ITERS = 80000
RECIPE_WARMUP = 1500
RECIPE_TOTAL_BATCH = 8


@dataclass(frozen=True)
class SegDatasetInfo:
    """One segmentation benchmark: mmseg dataset class, classes, folder name, expected split sizes."""

    name: str
    dataset_type: str
    num_classes: int
    folder: str
    converter: str
    expected: dict[str, int]
    channels: str = "RGB"


SEG_DATASETS: dict[str, SegDatasetInfo] = {
    # Expected tile counts: mmseg's dataset_prepare.md for its converters' default settings.
    "potsdam": SegDatasetInfo("potsdam", "PotsdamDataset", 6, "potsdam", "potsdam.py", {"train": 3456, "val": 2016}),
    "vaihingen": SegDatasetInfo("vaihingen", "ISPRSDataset", 6, "vaihingen", "vaihingen.py", {"train": 344, "val": 398},
                                channels="IRRG (NIR, R, G) fed as the 3 input channels in stored order"),
    "loveda": SegDatasetInfo("loveda", "LoveDADataset", 7, "loveda", "loveda.py", {"train": 2522, "val": 1669}),
}


def seg_configs_dir() -> Path:
    """The folder holding the shipped mmseg configs (``tasks/segmentation``)."""
    return tasks_dir() / "segmentation"


def get_seg_dataset(name: str) -> SegDatasetInfo:
    """Dataset info by name; unknown names list the known ones."""
    if name not in SEG_DATASETS:
        raise UnknownNameError(f"unknown segmentation dataset {name!r}{close_matches(name, list(SEG_DATASETS))}; "
                               f"known: {', '.join(SEG_DATASETS)}")
    return SEG_DATASETS[name]


def config_path(dataset: str, crop: int) -> Path:
    """Path of the shipped config ``upernet_<dataset>_<crop>.py``."""
    get_seg_dataset(dataset)
    if crop not in CROPS:
        raise ProtocolError(f"crop {crop} is not a shipped segmentation setting; expected one of {CROPS}")
    path = seg_configs_dir() / f"upernet_{dataset}_{crop}.py"
    if not path.is_file():
        raise SatbenchError(f"segmentation config {path} is missing from this installation")
    return path


def default_data_root(dataset: str) -> Optional[Path]:
    """``$SATBENCH_DATA/<folder>`` when ``SATBENCH_DATA`` is set, else None."""
    base = os.environ.get("SATBENCH_DATA")
    return Path(base) / get_seg_dataset(dataset).folder if base else None


def check_data_root(root: Path, dataset: str) -> dict[str, int]:
    """Check an mmseg-layout folder (``img_dir/{train,val}``, ``ann_dir/{train,val}``); returns tile counts."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"segmentation data folder {root} does not exist (expected img_dir/ and ann_dir/ as "
                        f"`satbench data prepare {dataset}` writes them)")
    counts = {}
    for split in ("train", "val"):
        for sub in ("img_dir", "ann_dir"):
            d = root / sub / split
            if not d.is_dir():
                raise DataError(f"{d} is missing (expected {root}/img_dir/{{train,val}} and {root}/ann_dir/{{train,val}})")
        imgs = sorted(p.stem for p in (root / "img_dir" / split).glob("*.png"))
        anns = {p.stem for p in (root / "ann_dir" / split).glob("*.png")}
        if not imgs:
            raise DataError(f"{root / 'img_dir' / split} holds no .png tiles")
        lacking = [s for s in imgs if s not in anns]
        if lacking:
            raise DataError(f"{root / 'ann_dir' / split}: no label for {len(lacking)} tile(s), e.g. {lacking[0]}.png")
        counts[split] = len(imgs)
    return counts


def _scale_schedule(cfg: Config, iters: int) -> dict[str, Any]:
    """Shorten the 80k recipe to ``iters`` iterations, scaling the warm-up proportionally."""
    warmup = RECIPE_WARMUP * iters // RECIPE_ITERS
    sched = []
    if warmup > 0:
        sched.append(dict(type="LinearLR", start_factor=1e-6, by_epoch=False, begin=0, end=warmup))
    sched.append(dict(type="PolyLR", eta_min=0.0, power=1.0, begin=warmup, end=iters, by_epoch=False))
    cfg.param_scheduler = sched
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = min(cfg.train_cfg.val_interval, iters)
    cfg.default_hooks.checkpoint.interval = min(cfg.default_hooks.checkpoint.interval, iters)
    cfg.default_hooks.logger.interval = min(cfg.default_hooks.logger.interval, max(1, iters // 10))
    return {"iters": iters, "warmup": warmup, "scaled_from": RECIPE_ITERS}


def build_config(
    model: str,
    dataset: str,
    crop: int,
    *,
    weights: Optional[str] = None,
    seed: int = 0,
    data_root: Optional[str | os.PathLike] = None,
    out_indices: Optional[Sequence[int]] = None,
    norm_layers: bool = True,
    frozen: bool = False,
    layer_decay: Optional[float] = None,
    build_options: Optional[dict[str, Any]] = None,
    trust_checkpoint: bool = False,
    kind: str = "pretrain",
    total_batch: int = RECIPE_TOTAL_BATCH,
    world_size: int = 1,
    num_workers: Optional[int] = None,
    iters: Optional[int] = None,
    work_dir: Optional[str | os.PathLike] = None,
    cfg_options: Optional[dict[str, Any]] = None,
) -> Config:
    """The shipped ``upernet_<dataset>_<crop>.py`` config, filled in for ``model`` (card name or card file).

    ``total_batch`` images per iteration are split over ``world_size`` processes (must divide).
    ``iters`` shortens the 80k schedule (warm-up scaled proportionally); ``cfg_options`` are applied last
    (mmengine ``merge_from_dict`` dotted keys, like mmseg's ``--cfg-options``).
    """
    card = resolve_card(model)
    info = get_seg_dataset(dataset)
    cfg = Config.fromfile(str(config_path(dataset, crop)))
    d = card.embed_dim
    idx = list(out_indices) if out_indices is not None else list(default_out_indices(card.depth))
    bb = cfg.model.backbone
    bb.model = model if model.endswith((".yaml", ".yml")) else card.name
    bb.weights = weights
    bb.seed = seed
    bb.out_indices = tuple(idx)
    bb.norm_layers = bool(norm_layers)
    bb.frozen = bool(frozen)
    bb.kind = kind
    bb.trust_checkpoint = bool(trust_checkpoint)
    bb.build_options = dict(build_options or {})
    cfg.model.neck.embed_dim = d
    cfg.model.decode_head.in_channels = [d] * 4
    cfg.model.auxiliary_head.in_channels = d
    norm = card.norm
    cfg.model.data_preprocessor.mean = [round(m * 255, 6) for m in norm.mean]
    cfg.model.data_preprocessor.std = [round(s * 255, 6) for s in norm.std]
    cfg.randomness = dict(seed=seed)
    if layer_decay is not None:
        if not 0 < layer_decay <= 1:
            raise ProtocolError(f"layer decay rate must be in (0, 1], got {layer_decay}")
        cfg.optim_wrapper = dict(
            type="OptimWrapper",
            optimizer=copy.deepcopy(cfg.optim_wrapper.optimizer),
            clip_grad=None,
            constructor="SatbenchLayerDecayOptimizerConstructor",
            paramwise_cfg=dict(num_layers=card.depth, decay_rate=float(layer_decay)))
    if total_batch % world_size:
        raise ProtocolError(f"total batch {total_batch} does not split over {world_size} processes")
    cfg.train_dataloader.batch_size = total_batch // world_size
    if num_workers is not None:
        for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
            cfg[key].num_workers = num_workers
            cfg[key].persistent_workers = num_workers > 0
    root = Path(data_root) if data_root is not None else default_data_root(dataset)
    if root is not None:
        for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
            cfg[key].dataset.data_root = str(root)
        cfg.data_root = str(root)
    if iters is not None:
        if iters <= 0:
            raise ProtocolError(f"iters must be positive, got {iters}")
        _scale_schedule(cfg, iters)
    if work_dir is not None:
        cfg.work_dir = str(work_dir)
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    cfg.satbench = dict(model=card.name, dataset=info.name, crop=crop, total_batch=total_batch,
                        world_size=world_size, layer_decay=layer_decay,
                        schedule_iters=cfg.train_cfg.max_iters, config=config_path(dataset, crop).name)
    return cfg


def write_config(cfg: Config, path: str | os.PathLike) -> Path:
    """Write ``cfg`` as a standalone mmseg Python config (atomically); returns the path."""
    path = Path(path)
    if path.suffix != ".py":
        raise SatbenchError(f"{path}: mmseg configs must be written as .py files")
    return atomic_write_bytes(path, cfg.pretty_text.encode())
