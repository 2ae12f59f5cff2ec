"""Segmentation configs: the shipped mmseg configs in ``tasks/segmentation/`` filled in for one model.

:func:`build_config` loads ``upernet_<dataset>_<crop>.py`` with mmengine and rewrites the model-dependent
values (backbone name/weights/options, tapped blocks, channel widths, the card's normalisation x 255) and
the run-dependent ones (data root, batch split over processes, shortened schedule). :func:`write_config`
writes it as a complete runnable mmseg config (``custom_imports`` included) for mmseg's own tools.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Optional, Sequence

from satbench.runtime import mmcv_compat

mmcv_compat.install()

from mmengine.config import Config  # noqa: E402

from satbench.data.segmentation import SegDatasetInfo, check_data_root, default_seg_root, get_seg_dataset  # noqa: E402,F401
from satbench.data.segmentation import seg_datasets  # noqa: E402
from satbench.errors import ProtocolError, SatbenchError  # noqa: E402
from satbench.io.atomic import atomic_write_bytes  # noqa: E402
from satbench.runtime.resources import tasks_dir  # noqa: E402
from satbench.config.seg_settings import SegmentationSettings  # noqa: E402
from satbench.seg.backbone import default_out_indices, resolve_card  # noqa: E402

CROPS = (224, 512)
DEFAULT_PROTOCOL = "upernet-v1"


#: The shipped segmentation datasets (read once from the catalog; use :func:`seg_datasets` for user additions).
SEG_DATASETS: dict[str, SegDatasetInfo] = seg_datasets()


def seg_configs_dir() -> Path:
    """The folder holding the shipped mmseg configs (``tasks/segmentation``)."""
    return tasks_dir() / "segmentation"


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
    return default_seg_root(get_seg_dataset(dataset).folder)


def default_recipe() -> SegmentationSettings:
    """The default segmentation protocol's settings (``tasks/segmentation/upernet-v1.yaml``)."""
    from satbench.config.protocols import load_protocol

    return load_protocol(DEFAULT_PROTOCOL, task="segmentation").settings(SegmentationSettings)


def _schedule(cfg: Config, iters: int, recipe: SegmentationSettings) -> dict[str, Any]:
    """The recipe's schedule for ``iters`` iterations (a shorter run scales the warm-up proportionally)."""
    warmup = recipe.warmup_for(iters)
    sched = []
    if warmup > 0:
        sched.append(dict(type="LinearLR", start_factor=recipe.warmup_start_factor, by_epoch=False, begin=0,
                          end=warmup))
    sched.append(dict(type="PolyLR", eta_min=0.0, power=recipe.poly_power, begin=warmup, end=iters, by_epoch=False))
    cfg.param_scheduler = sched
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = min(cfg.train_cfg.val_interval, iters)
    cfg.default_hooks.checkpoint.interval = min(cfg.default_hooks.checkpoint.interval, iters)
    cfg.default_hooks.logger.interval = min(cfg.default_hooks.logger.interval, max(1, iters // 10))
    return {"iters": iters, "warmup": warmup, "scaled_from": recipe.warmup_reference_iters}


def _apply_recipe(cfg: Config, recipe: SegmentationSettings, crop: int) -> None:
    """Write the recipe's optimiser, heads and inference window into the config."""
    if crop not in recipe.crops:
        raise ProtocolError(f"crop {crop} is not one of the protocol's crops {list(recipe.crops)}")
    opt = cfg.optim_wrapper.optimizer
    opt.lr = recipe.lr
    opt.betas = tuple(recipe.betas)
    opt.weight_decay = recipe.weight_decay
    cfg.model.decode_head.channels = recipe.decode_channels
    cfg.model.auxiliary_head.channels = recipe.aux_channels
    cfg.model.auxiliary_head.loss_decode.loss_weight = recipe.aux_loss_weight
    stride = int(round(crop * recipe.test_stride_ratio))
    cfg.model.test_cfg.mode = recipe.test_mode
    cfg.model.test_cfg.stride = (stride, stride)


def build_config(
    model: str,
    dataset: str,
    crop: int,
    *,
    weights: Optional[str] = None,
    seed: int = 0,
    data_root: Optional[str | os.PathLike] = None,
    out_indices: Optional[Sequence[int]] = None,
    norm_layers: Optional[bool] = None,
    frozen: Optional[bool] = None,
    layer_decay: Optional[float] = None,
    build_options: Optional[dict[str, Any]] = None,
    trust_checkpoint: bool = False,
    kind: str = "pretrain",
    total_batch: Optional[int] = None,
    world_size: int = 1,
    num_workers: Optional[int] = None,
    iters: Optional[int] = None,
    work_dir: Optional[str | os.PathLike] = None,
    cfg_options: Optional[dict[str, Any]] = None,
    recipe: Optional[SegmentationSettings] = None,
) -> Config:
    """The shipped ``upernet_<dataset>_<crop>.py`` config, filled in for ``model`` (card name or card file) and the
    segmentation protocol's ``recipe`` (default: ``upernet-v1``).

    Arguments left None take the recipe's value: ``total_batch`` images per iteration are split over ``world_size``
    processes (must divide); ``iters`` shortens the schedule (warm-up scaled proportionally); ``cfg_options`` are
    applied last (mmengine ``merge_from_dict`` dotted keys, like mmseg's ``--cfg-options``).
    """
    recipe = recipe or default_recipe()
    card = resolve_card(model)
    info = get_seg_dataset(dataset)
    cfg = Config.fromfile(str(config_path(dataset, crop)))
    _apply_recipe(cfg, recipe, crop)
    norm_layers = recipe.norm_layers if norm_layers is None else norm_layers
    frozen = recipe.frozen if frozen is None else frozen
    layer_decay = recipe.layer_decay if layer_decay is None else layer_decay
    total_batch = recipe.total_batch if total_batch is None else total_batch
    d = card.embed_dim
    if out_indices is None:
        out_indices = recipe.out_indices_for(card.depth) or default_out_indices(card.depth)
    idx = list(out_indices)
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
    iters = recipe.iters if iters is None else iters
    if iters <= 0:
        raise ProtocolError(f"iters must be positive, got {iters}")
    _schedule(cfg, iters, recipe)
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
