"""Train and evaluate a UperNet segmentor through mmengine's ``Runner``; write a satbench result record.

One call = one row of the paper's segmentation table: model x dataset x crop. The final validation
(mmengine always validates after the last iteration) gives mIoU, mFscore and the per-class values,
which go into a record (task ``segmentation``, summary ``{"mIoU": <percent>, "crop": <px>}``). Under
``torchrun`` (``WORLD_SIZE > 1``) the runner uses mmengine's ``pytorch`` launcher and only rank 0 writes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from satbench.runtime import mmcv_compat

mmcv_compat.install()

from mmengine.hooks import Hook  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from satbench.runtime.distributed import join_process_group, torchrun_rank, torchrun_world_size  # noqa: E402
from satbench.errors import SatbenchError  # noqa: E402
from satbench.io.atomic import atomic_torch_save, atomic_write_bytes
from satbench.io.hashing import canonical_hash  # noqa: E402
from satbench.io.locking import holds_output_lock  # noqa: E402
from satbench.records.results import make_record, write_record  # noqa: E402
from satbench.seg.backbone import resolve_card  # noqa: E402
from satbench.seg import safe_resume  # noqa: E402
from satbench.data.segmentation import resolve_seg_dataset  # noqa: E402
from satbench.data.segmentation import check_data_root, get_seg_dataset  # noqa: E402
from satbench.seg.config import DEFAULT_PROTOCOL  # noqa: E402
from satbench.seg.run_args import RUN_ARGS_NAME, SegRunArgs, cpu_distributed_edits, make_config, replace_norm_type  # noqa: E402
from satbench.seg.run_args import write_run_args  # noqa: E402

FINAL_WEIGHTS = "final_weights.pth"
CONFIG_NAME = "satbench_seg_config.py"


class _KeepMetrics(Hook):
    """Remembers the metrics of the latest validation and the training losses of this process."""

    priority = "VERY_LOW"

    def __init__(self) -> None:
        self.metrics: Optional[dict[str, Any]] = None
        self.losses: list[float] = []

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if outputs and "loss" in outputs:
            self.losses.append(round(float(outputs["loss"].detach()), 5))

    def after_val_epoch(self, runner: Runner, metrics: Optional[dict[str, Any]] = None) -> None:
        self.metrics = dict(metrics or {})


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def _num(v: Any) -> Optional[float]:
    """mmseg's percent values as plain floats rounded to 2 decimals; NaN (class absent) -> None."""
    f = float(v)
    return None if f != f else round(f, 2)


def _split_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"units": "percent"}
    per_class: dict[str, dict[str, float]] = {}
    for k, v in metrics.items():
        if "." in k:
            name, cls = k.split(".", 1)
            per_class.setdefault(name, {})[cls] = _num(v)
        else:
            out[k] = _num(v)
    out["per_class"] = per_class
    return out


_replace_norm_type = replace_norm_type  # the name earlier code and tests use


def _check_cpu_distributed_batch(cfg: Any) -> None:
    per_process = int(cfg.train_dataloader.batch_size)
    if per_process < 2:
        raise SatbenchError(f"--seg-batch gives {per_process} image per process under torchrun on CPU; per-process "
                            "BatchNorm (SyncBN needs CUDA) needs at least 2: raise --seg-batch to 2 x nproc_per_node")


def _cpu_distributed_info(replaced: Optional[int]) -> dict[str, Any]:
    return {"backend": "gloo", "device_ids": None, "norm": "BN per process (SyncBN needs CUDA)",
            "syncbn_replaced": replaced}


def _prepare_cpu_distributed(cfg: Any) -> dict[str, Any]:
    """Make mmengine's ``pytorch`` launcher work on CPU (gloo) under torchrun.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device`` and its DDP wrapper passes ``device_ids=[LOCAL_RANK]``,
    both of which fail without CUDA, and ``SyncBatchNorm`` only runs on accelerators. satbench therefore starts
    the gloo process group itself (mmengine skips ``init_dist`` when one exists), wraps with ``device_ids=None``,
    and uses per-process ``BN`` instead of ``SyncBN`` (recorded as ``cpu_distributed`` in the protocol params).
    :func:`run_segmentation` makes the config edits through :func:`satbench.seg.run_args.make_config`.
    """
    _check_cpu_distributed_batch(cfg)
    join_process_group("gloo")
    return _cpu_distributed_info(cpu_distributed_edits(cfg))


def split_sha256(dataset: Any) -> str:
    """sha256 of an mmseg dataset's tiles: the sorted (image path, size, label path, size) of its data list, paths
    relative to its data root (so a copy of the data elsewhere hashes the same)."""
    root = Path(getattr(dataset, "data_root", "") or "")

    def rel(p: str) -> str:
        try:
            return Path(p).relative_to(root).as_posix() if str(root) else Path(p).name
        except ValueError:
            return Path(p).name

    rows = []
    for i in range(len(dataset)):  # mmengine serialises data_list away; get_data_info reads each entry back
        item = dataset.get_data_info(i)
        img, ann = item.get("img_path"), item.get("seg_map_path")
        rows.append([rel(img), os.path.getsize(img), rel(ann) if ann else None,
                     os.path.getsize(ann) if ann else None])
    if not rows:
        raise TypeError("the dataset lists no tiles")
    return canonical_hash({"tiles": sorted(rows, key=lambda r: r[0])})


def _attach_statistics(record: Any, runner: Runner, statistics: Any) -> None:
    """Rank 0: the split hashes, the per-image confusion sidecar and the mIoU interval of the final validation."""
    from satbench.stats.attach import StatsOptions, attach
    from satbench.stats.fields import segmentation_fields

    try:
        hashes = {"train": split_sha256(runner.train_dataloader.dataset),
                  "val": split_sha256(runner.val_dataloader.dataset)}
    except (OSError, AttributeError, TypeError) as exc:
        record["metrics"]["statistics"] = {"error": f"statistics left out: cannot hash the splits ({exc})"}
        return
    record["dataset"] = {**record["dataset"], "split_hashes": hashes}
    metric = next((m for m in getattr(runner.val_evaluator, "metrics", []) if hasattr(m, "per_image")), None)
    if metric is None or metric.per_image is None:
        record["metrics"]["statistics"] = {"error": "statistics left out: the val metric kept no per-image confusion "
                                                    "counts (val_evaluator is not SatbenchIoUMetric)"}
        return
    names, confusion = metric.per_image
    val = runner.val_dataloader.dataset
    expected = sorted(str(val.get_data_info(i)["img_path"]) for i in range(len(val)))
    if names != expected:
        record["metrics"]["statistics"] = {"error": f"statistics left out: the final validation kept {len(names)} "
                                                    f"per-image confusions for {len(expected)} val tiles"}
        return
    record["metrics"]["n_val"] = int(confusion.shape[0])
    stats = statistics if statistics is not None else StatsOptions()
    fields = segmentation_fields(confusion, split_sha256=hashes["val"], **stats.kwargs())
    # the record's mIoU is mmseg's, rounded to 2 decimals
    attach(record, fields, tol=0.005 + 1e-9)


def _evaluate_corruptions(runner: Runner, plan: Any) -> Any:
    """Every rank: the val split under each (type, severity) of ``plan``; an error line (str) when the val split
    cannot be hashed (its sha256 seeds the corruptions)."""
    from satbench.seg.corruption import evaluate_corruptions

    try:
        val_sha = split_sha256(runner.val_dataloader.dataset)
    except (OSError, AttributeError, TypeError) as exc:
        return f"corruptions left out: cannot hash the val split ({exc})"
    return evaluate_corruptions(runner, plan, val_sha)


def _attach_corruptions(record: Any, runner: Runner, plan: Any, corrupted: Any, statistics: Any) -> None:
    """Rank 0: the corruption block against the clean final validation's per-image confusions."""
    from satbench.seg.corruption import attach_corruptions
    from satbench.stats.attach import StatsOptions

    st = record["metrics"].get("statistics") or {}
    if isinstance(corrupted, str) or "error" in st:
        record["metrics"]["corruptions"] = {"error": corrupted if isinstance(corrupted, str) else
                                            f"corruptions left out: the clean interval is missing ({st['error']})"}
        return
    metric = next(m for m in runner.val_evaluator.metrics if hasattr(m, "per_image"))
    attach_corruptions(record, plan, metric.per_image, corrupted, split_sha256=record["dataset"]["split_hashes"]["val"],
                       stats_opts=statistics if statistics is not None else StatsOptions())


def default_work_dir(model: str, dataset: str, crop: int, seg_format: Optional[str] = None) -> Path:
    """``work_dirs/seg/<model>_<dataset kind>_<crop>`` (relative to the current folder)."""
    return Path("work_dirs") / "seg" / f"{resolve_card(model).name}_{resolve_seg_dataset(dataset, seg_format=seg_format)[0]}_{crop}"


@holds_output_lock(lambda a: a["work_dir"] or default_work_dir(a["model"], a["dataset"], a["crop"], a["seg_format"]),
                   "segmentation --work-dir")  # one run per work dir (rank 0 holds it)
def run_segmentation(
    model: str,
    dataset: str,
    crop: int,
    *,
    seg_format: Optional[str] = None,
    weights: Optional[str] = None,
    seed: int = 0,
    work_dir: Optional[str | os.PathLike] = None,
    iters: Optional[int] = None,
    frozen: Optional[bool] = None,
    layer_decay: Optional[float] = None,
    out_indices: Optional[Sequence[int]] = None,
    norm_layers: Optional[bool] = None,
    total_batch: Optional[int] = None,
    num_workers: Optional[int] = None,
    resume: Optional[str] = None,
    build_options: Optional[dict[str, Any]] = None,
    trust_checkpoint: bool = False,
    bf16: bool = False,
    cfg_options: Optional[dict[str, Any]] = None,
    results_dir: Optional[str | os.PathLike] = None,
    write: bool = True,
    protocol: Any = None,
    dataset_describe: Optional[dict[str, Any]] = None,
    train_seed: Optional[int] = None,
    statistics: Any = None,
    corruptions: Any = None,
    feature_check: Optional[Callable[[Any, dict[str, Any]], dict[str, Any]]] = None,
) -> dict[str, Any]:
    """Train UperNet on ``dataset`` at ``crop`` px and evaluate it; returns the result record.

    ``seed`` seeds the random init of ``weights="random"`` and, unless ``train_seed`` is given, the training
    (mmengine's ``randomness``); ``train_seed`` (``--seeds``) seeds the training alone (recorded). The record keeps the
    per-image confusion counts of the final validation (sidecar) and the bootstrap interval of mIoU over val images
    (``statistics``: :class:`satbench.stats.attach.StatsOptions`, default 10,000 resamples); its
    ``dataset.split_hashes`` are sha256 digests of the sorted tile names and sizes (images and labels) of each split.

    ``resume``: None (fresh run), ``"auto"`` (the checkpoint ``work_dir/last_checkpoint`` names, which must lie
    inside the work dir; a fresh run when there is none) or a checkpoint path. The checkpoint is read weights-only
    with an allow-list (:mod:`satbench.seg.safe_resume`); ``trust_checkpoint`` allows the full unpickling.
    The run's settings are written as data to ``work_dir/satbench_seg_run.json`` (:mod:`satbench.seg.run_args`),
    from which ``seg-predict`` rebuilds the config without executing the ``.py`` dump.

    ``corruptions`` (a :class:`satbench.eval.corruption_eval.CorruptionPlan`, photometric types only): after the
    clean validation, the val split once more per (type, severity) (:mod:`satbench.seg.corruption`), recorded in
    ``metrics["corruptions"]`` / ``summary["corruptions"]``; None leaves the run and its record as they were.
    ``feature_check(features, sample)``: the features guard, called before the decoder trains with the backbone's
    patch features on a bounded sample of the val tiles (:func:`satbench.seg.feature_sample.backbone_patch_sample`);
    it raises to stop the run, or returns the record's ``features`` section.
    """
    from satbench.config.seg_settings import SegmentationSettings
    from satbench.config.protocols import load_protocol

    if corruptions is not None:
        from satbench.seg.corruption import check_plan

        check_plan(corruptions)  # before any training
    protocol = protocol or load_protocol(DEFAULT_PROTOCOL, task="segmentation")
    recipe = protocol.settings(SegmentationSettings)
    kind, root = resolve_seg_dataset(dataset, seg_format=seg_format)
    counts = check_data_root(root, kind)
    card = resolve_card(model)
    world_size = torchrun_world_size()
    rank = torchrun_rank()
    if work_dir is None:
        work_dir = default_work_dir(model, dataset, crop, seg_format)
    work_dir = Path(work_dir)
    if resume not in (None, "auto") and not Path(resume).is_file():
        raise SatbenchError(f"--resume {resume}: no such checkpoint file")
    cuda = torch.cuda.is_available()
    if bf16 and not cuda:
        raise SatbenchError("--bf16 for segmentation uses mmengine's AmpOptimWrapper, which needs a CUDA device")
    resume_from = None
    if resume == "auto":
        resume_from = safe_resume.find_resume_checkpoint(work_dir)
    elif resume is not None:
        resume_from = Path(os.path.realpath(resume))
    run_args = SegRunArgs(
        model=model, dataset=kind, crop=crop, weights=weights, seed=seed, data_root=str(root),
        out_indices=tuple(out_indices) if out_indices is not None else None,
        norm_layers=bool(recipe.norm_layers if norm_layers is None else norm_layers),
        frozen=bool(recipe.frozen if frozen is None else frozen),
        layer_decay=float(layer_decay) if layer_decay is not None else recipe.layer_decay,
        build_options=dict(build_options or {}), trust_checkpoint=bool(trust_checkpoint),
        total_batch=recipe.total_batch if total_batch is None else total_batch, world_size=world_size,
        num_workers=num_workers, iters=recipe.iters if iters is None else iters, work_dir=str(work_dir),
        cfg_options=tuple(dict(cfg_options or {}).items()), launcher="pytorch" if world_size > 1 else "none",
        dist_backend=None if cuda else "gloo", cpu_distributed=world_size > 1 and not cuda, bf16=bool(bf16),
        resume=resume_from is not None, load_from=str(resume_from) if resume_from is not None else None,
        protocol=protocol.name, protocol_overrides=tuple(protocol.overrides.items()),
    ).validate("segmentation run", "--seg-cfg-options")
    cfg, replaced = make_config(run_args)
    if train_seed is not None and int(train_seed) != int(seed):
        cfg.randomness = dict(seed=int(train_seed))  # the backbone's random init keeps `seed`
    cpu_dist = None
    if run_args.cpu_distributed:
        _check_cpu_distributed_batch(cfg)
    if resume_from is not None:  # refuse an unsafe or foreign checkpoint before mmengine starts (and writes logs)
        safe_resume.read_resume_checkpoint(resume_from, trust_checkpoint=trust_checkpoint)
    if run_args.cpu_distributed:
        join_process_group("gloo")
        cpu_dist = _cpu_distributed_info(replaced)
    work_dir.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        write_run_args(run_args, work_dir / RUN_ARGS_NAME)
        atomic_write_bytes(work_dir / CONFIG_NAME, cfg.pretty_text.encode())

    runner = Runner.from_cfg(cfg)
    if resume_from is not None:
        safe_resume.install(runner, resume_from, trust_checkpoint=trust_checkpoint)
    features = None
    if feature_check is not None:  # before any training step: a NaN or collapsed backbone never trains a decoder
        from satbench.seg.feature_sample import backbone_patch_sample

        feats, sample = backbone_patch_sample(_unwrap(runner.model), cfg)
        features = feature_check(feats, sample)
    keep = _KeepMetrics()
    runner.register_hook(keep)
    t0 = time.perf_counter()
    runner.train()
    train_s = time.perf_counter() - t0
    if keep.metrics is None:
        raise SatbenchError("training finished without a validation pass (no metrics)")
    corrupted = _evaluate_corruptions(runner, corruptions) if corruptions is not None else None
    seg_model = _unwrap(runner.model)
    backbone = seg_model.backbone
    record_path = None
    if rank == 0:
        final = work_dir / FINAL_WEIGHTS
        atomic_torch_save({"state_dict": {k: v.detach().cpu() for k, v in seg_model.state_dict().items()},
                           "meta": {"dataset_meta": dict(runner.train_dataloader.dataset.metainfo),
                                    "config": CONFIG_NAME, "iter": runner.iter}}, final)
    metrics = _split_metrics(keep.metrics)
    info = get_seg_dataset(kind)
    applied = {
        "config": cfg.satbench["config"], "crop": crop, "iters": cfg.train_cfg.max_iters,
        "total_batch": cfg.satbench["total_batch"], "world_size": world_size,
        "batch_per_process": cfg.train_dataloader.batch_size,
        "optimizer": cfg.optim_wrapper.optimizer.to_dict(), "optim_wrapper": cfg.optim_wrapper.type,
        "layer_decay": cfg.satbench["layer_decay"], "param_scheduler": [dict(s) for s in cfg.param_scheduler],
        "frozen": bool(backbone.frozen), "out_indices": list(backbone.out_indices),
        "norm_layers": bool(backbone.norm_layers), "neck": "Feature2Pyramid[4,2,1,0.5]", "decode_head": "UPerHead",
        "channels": cfg.model.decode_head.channels, "aux_head": "FCNHead(in_index=2)",
        "test_cfg": cfg.model.test_cfg.to_dict(), "seed": seed, "resumed": resume is not None,
        "cfg_options": dict(cfg_options or {}),
    }
    if train_seed is not None and int(train_seed) != int(seed):
        applied["train_seed"] = int(train_seed)
    if cpu_dist is not None:
        applied["cpu_distributed"] = cpu_dist
    # Run settings outside the recipe that still change numbers become overrides of the protocol (recorded).
    run_overrides = {k: v for k, v in {"out_indices_run": list(out_indices) if out_indices is not None else None,
                                        "cfg_options": dict(cfg_options) if cfg_options else None}.items()
                     if v is not None}
    protocol_record = protocol.as_record()
    if run_overrides:
        protocol_record["overrides"] = {**protocol_record["overrides"], **run_overrides}
    record = make_record(
        task="segmentation", model=card.name, weights=backbone.weights_info.as_dict(), protocol=protocol_record,
        dataset=dataset_describe or {"name": kind, "root": str(root), "counts": counts,
                                     "mmseg_type": info.dataset_type, "num_classes": info.num_classes,
                                     "channels": info.channels},
        metrics=metrics, summary={"mIoU": metrics["mIoU"], "crop": crop},
        extractor={"normalization": card.norm.as_dict(), "mean_255": list(cfg.model.data_preprocessor.mean),
                   "std_255": list(cfg.model.data_preprocessor.std), "bf16": bf16,
                   "model_options": backbone.options["model_options"]},
        timings={"train_s": round(train_s, 3), "s_per_iter": round(train_s / max(1, cfg.train_cfg.max_iters), 4)},
        extra={"applied": applied, "work_dir": str(work_dir), "config_file": str(work_dir / CONFIG_NAME),
               "run_args_file": str(work_dir / RUN_ARGS_NAME),
               "final_weights": str(work_dir / FINAL_WEIGHTS), "final_iter": runner.iter,
               "train_loss": keep.losses},
        device=str(next(seg_model.parameters()).device),
    )
    if features is not None:
        record["features"] = features
    if rank == 0:
        _attach_statistics(record, runner, statistics)
        if corrupted is not None:
            _attach_corruptions(record, runner, corruptions, corrupted, statistics)
    if write and rank == 0:
        record_path = write_record(record, results_dir)
        record["_path"] = str(record_path)
    return record
