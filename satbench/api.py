"""satbench's Python API: load a model, open a dataset, run a task, read the leaderboard.

The command line (``satbench.cli.commands``) only parses arguments, calls these functions and prints. The functions
only wire the pieces: the registry and weights (:mod:`satbench.models.registry`, :mod:`satbench.models.weights`), the dataset
catalog (:mod:`satbench.data.datasets`), protocols (:mod:`satbench.config.protocols`), the task registry
(:mod:`satbench.eval.task`) and the results store (:mod:`satbench.records.results`).

Example::

    import satbench
    model = satbench.load_model("satdino-vit_small-16", weights="random")
    feats = model.extract("ucm-mini", size=224)              # [n, 384] normed CLS of the bundled images
    record = satbench.run("knn", model=model, dataset="ucm-mini", scales=[1.0, 0.5])
    print(record.summary["top1_avg"])
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from satbench.errors import DataError, ProtocolError, SatbenchError

log = logging.getLogger("satbench")

DEFAULT_MODEL = "satdino-vit_small-16"


# ---------------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------------
class Model:
    """A loaded backbone: its card, the provenance of its weights, and the sealed feature extractor.

    ``features(images)`` runs the backbone on a batch ``[B, 3, H, W]`` (floats in [0, 1] or uint8; the model's
    normalisation is always applied); ``extract(folder_or_split, size)`` returns the normed-CLS features of every image
    of a folder, a split file or a bundled dataset with the kNN transform at ``size`` px.
    """

    def __init__(self, loaded: Any, *, device: str = "auto", bf16: bool = False) -> None:
        self.loaded = loaded
        self.device = device
        self.bf16 = bf16
        self._extractor: Any = None

    @property
    def card(self) -> Any:
        return self.loaded.card

    @property
    def weights(self) -> Any:
        return self.loaded.weights

    @property
    def name(self) -> str:
        return self.loaded.card.name

    @property
    def extractor(self) -> Any:
        if self._extractor is None:
            from satbench.models.features import FeatureExtractor

            self._extractor = FeatureExtractor(self.loaded, device=self.device, bf16=self.bf16)
        return self._extractor

    def features(self, images: Any, *, layers: Sequence[int] = (), input_res: Any = None) -> Any:
        """:class:`~satbench.models.backbones.base.BackboneOutput` of a batch of un-normalised images."""
        import torch

        if isinstance(images, np.ndarray):
            images = torch.from_numpy(images)
        return self.extractor(images, layers=layers, input_res=input_res)

    def extract(self, images: str | os.PathLike, size: int = 224, *, normalization: Optional[str] = None,
                batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """``[n, D]`` float32 features of an image folder, a split file, or a bundled dataset's val split."""
        from satbench.data.catalog import find_dataset_spec
        from satbench.eval.extract_folder import extract_features

        path = Path(images)
        spec = find_dataset_spec(str(images)) if not path.exists() else None
        if spec is not None and spec.bundled_dir is not None:
            path = spec.bundled_dir / "val.txt"
        feats, _ = extract_features(self.loaded, path, size, normalization=normalization, device=self.device,
                                    bf16=self.bf16, batch_size=batch_size, progress=progress)
        return feats

    def __repr__(self) -> str:
        return f"Model({self.name!r}, weights={self.weights.tag or self.weights.source!r})"


def list_models() -> list[Any]:
    """Every registered model card (``models/`` and ``$SATBENCH_MODEL_CARDS``), sorted by name."""
    from satbench.models.registry import list_cards

    return list_cards()


def load_model(name: str = DEFAULT_MODEL, weights: Optional[str] = None, *, seed: int = 0,
               trust_checkpoint: bool = False, kind: str = "pretrain", device: str = "auto", bf16: bool = False,
               allow_unpinned: bool = False, **options: Any) -> Model:
    """Build ``name``'s backbone and load its weights strictly.

    ``weights``: None (the card's official weights from the cache or the hub), ``"random"`` (seeded with ``seed``),
    a file or a folder. ``options`` are the family's build options (e.g. ``attn_impl="sdpa"``), checked against what
    the family declares.
    """
    return Model(load(name, weights, seed=seed, trust_checkpoint=trust_checkpoint, kind=kind, options=options,
                      allow_unpinned=allow_unpinned), device=device, bf16=bf16)


def check_model_options(name: str, options: dict[str, Any], option_label: Any = None) -> Any:
    """``name``'s card, after checking that every build option is one its family declares, with an allowed value."""
    from satbench.models.backbones import FAMILIES
    from satbench.models.registry import get_card

    label = option_label or (lambda k: f"option {k}")
    card = get_card(name)
    family = FAMILIES[card.family]
    for key in options:
        if key not in family.options:
            raise SatbenchError(f"{label(key)} does not apply to {card.name}: the {family.name} family has no {key} "
                                f"option (its options: {', '.join(sorted(family.options)) or 'none'})")
    family.check_options(options, f"model {card.name}")
    return card


def load(name: str, weights: Optional[str] = None, *, seed: int = 0, trust_checkpoint: bool = False,
         kind: str = "pretrain", options: Optional[dict[str, Any]] = None, allow_unpinned: bool = False,
         option_label: Any = None) -> Any:
    """The one place a model is loaded by name: card, family options (checked against what the family declares),
    weights (strict, safe; :func:`satbench.models.weights.load_model`). Returns a :class:`~satbench.models.weights.LoadedModel`."""
    from satbench.models import weights as weights_mod

    options = dict(options or {})
    card = check_model_options(name, options, option_label)
    return weights_mod.load_model(card, weights, kind=kind, seed=seed, trust_checkpoint=trust_checkpoint,
                                  allow_unpinned=allow_unpinned, **options)


# ---------------------------------------------------------------------------------------------------------------------
# Datasets, protocols, tasks
# ---------------------------------------------------------------------------------------------------------------------
def open_dataset(name_or_dir: Optional[str] = None, **kwargs: Any) -> Any:
    """A dataset by catalog name, bundled subset or folder (see :func:`satbench.data.datasets.open_dataset`)."""
    from satbench.data.datasets import open_dataset as _open

    return _open(name_or_dir, **kwargs)


def list_datasets(kind: Optional[str] = None) -> list[Any]:
    """The dataset catalog (optionally one kind: ``scene``, ``fmow``, ``segmentation``)."""
    from satbench.data.catalog import list_datasets as _list

    return _list(kind)


def list_protocols(task: Optional[str] = None) -> list[Any]:
    """Every shipped protocol (optionally those a task accepts), sorted by name."""
    from satbench.eval.task import get_task
    from satbench.config.protocols import list_protocols as _list

    protos = _list()
    if task is None:
        return protos
    t = get_task(task)
    return [p for p in protos if t.accepts(p)]


def list_tasks() -> list[Any]:
    """Every registered task (built-in and ``$SATBENCH_PLUGINS``)."""
    from satbench.eval.task import list_tasks as _list

    return _list()


def resolve_protocol(task: Any, protocol: Optional[str] = None, overrides: Optional[dict[str, Any]] = None) -> Any:
    """The task's protocol (its default when None) with ``overrides``, checked against the task's typed settings."""
    from satbench.config.protocols import load_protocol

    proto = load_protocol(protocol or task.default_protocol)
    if not task.accepts(proto):
        raise ProtocolError(f"protocol {proto.name} (task {proto.task}) does not apply to task {task.name}")
    ov = task.complete_overrides(proto, {k: v for k, v in (overrides or {}).items() if v is not None})
    if ov:
        proto = proto.with_overrides(**ov)
    settings = task.settings_for(proto)
    if settings is not None:
        proto.settings(settings)  # strict: fails here, before any work, naming the file and the key
    return proto


# ---------------------------------------------------------------------------------------------------------------------
# Running a task
# ---------------------------------------------------------------------------------------------------------------------
RUN_OPTION_NAMES = ("device", "bf16", "batch_size", "num_workers", "use_cache", "cache_dir", "cache_identity",
                    "progress", "seed", "output_dir", "resume", "trust_checkpoint", "allow_unpinned",
                    "allow_collapsed_features")
DATASET_OPTION_NAMES = ("data_root", "normalization", "native_size", "split_source", "train_csv", "val_csv",
                        "seg_format", "split_family")


def run(task: str, model: Any = DEFAULT_MODEL, dataset: Any = None, protocol: Optional[str] = None, *,
        weights: Optional[str] = None, results_dir: Optional[str | os.PathLike] = None, write: bool = True,
        model_options: Optional[dict[str, Any]] = None, task_options: Optional[dict[str, Any]] = None,
        overrides: Optional[dict[str, Any]] = None, seeds: Optional[Sequence[int]] = None, **kwargs: Any) -> Any:
    """Run ``task`` for ``model`` on ``dataset`` under ``protocol``; returns the :class:`~satbench.records.results.Record`
    (written to ``results_dir`` unless ``write=False``; None on the non-main processes of a torchrun job).

    Statistics (:mod:`satbench.stats.attach`; every option recorded): ``resamples`` (bootstrap resamples of the
    intervals, default 10,000); ``seeds=[0, 1, 2]`` (trained probes: one record per seed, returns the aggregate record
    with the per-seed records in ``record["_members"]``); ``train_fraction=[0.01, 0.1]`` / ``shots=[5]`` with
    ``draws`` and ``subset_seed`` (knn, cached-linear: returns a list with one record per fraction / shot count -- the
    draws aggregate when ``draws > 1``). They may also be given in ``task_options``. Corruptions (knn, cached-linear,
    linear with ``evaluate=True``, segmentation; :mod:`satbench.eval.corruption_eval`, :mod:`satbench.seg.corruption`):
    ``corruptions=["gaussian_noise", ...]`` (or ``[]`` for all 12; segmentation: the 9 photometric, geometric types
    refused), ``severities=[1, 3]`` or ``"1..5"``, ``corruption_protocol`` (default ``reo-v2``).

    ``model``: a registered name (loaded with ``weights``), a :class:`Model`, or a loaded model. ``dataset``: a
    catalog name, a folder, or an opened dataset (default: the bundled ``ucm-mini``). Keyword arguments are run
    options (``device``, ``bf16``, ``batch_size``, ``num_workers``, ``use_cache``, ``progress``, ``seed``,
    ``output_dir``, ``resume``, ``trust_checkpoint``, ``allow_collapsed_features``), dataset options (``data_root``,
    ``normalization`` -- a preset, ``mean=..;std=..`` or ``compute`` --, ``native_size``, ``split_source``,
    ``split_family`` -- ``satdino`` (default) or ``torchgeo`` for the tasks that take it --, ``train_csv``, ``val_csv``,
    ``seg_format``), or protocol overrides (e.g. ``scales=[1.0, 0.5]``, ``k=[20]``, ``epochs=1``; recorded). A protocol
    parameter whose name is also a run option (the linear protocol's ``batch_size``) goes in ``overrides={...}``.
    """
    from satbench.runtime.distributed import require_single_process, torchrun_world_size
    from satbench.runtime.ranks import is_job_main
    from satbench.eval.task import RunOptions, get_task
    from satbench.io.locking import output_lock
    from satbench.records.results import check_results_folder

    from satbench.stats import attach as stats_options

    t = get_task(task)
    run_kw = {k: kwargs.pop(k) for k in RUN_OPTION_NAMES if k in kwargs}
    ds_kw = {k: kwargs.pop(k) for k in DATASET_OPTION_NAMES if k in kwargs}
    extra = dict(task_options or {})
    extra.update({k: kwargs.pop(k) for k in stats_options.OPTION_NAMES if k in kwargs})
    from satbench.eval.corruption_eval import OPTION_NAMES as CORRUPTION_OPTIONS

    extra.update({k: kwargs.pop(k) for k in CORRUPTION_OPTIONS if k in kwargs})
    seeds = extra.pop("seeds", None) if seeds is None else seeds
    overrides = {**kwargs, **(overrides or {})}  # protocol parameters (checked against the task's settings)
    if run_kw.get("num_workers") is None:
        from satbench.runtime.device import default_num_workers

        run_kw["num_workers"] = default_num_workers(t.default_num_workers, run_kw.get("device"))
    seeds = stats_options.check_options(t, extra, seeds)  # before any work
    from satbench.eval.corruption_eval import check_options as check_corruption_options

    check_corruption_options(t, {**extra, "seeds": seeds})  # unknown types / severities / protocol: before any work
    options = RunOptions(**run_kw, extra=extra)
    if not t.distributed:
        require_single_process(f"satbench run --task {t.name}")
    torchrun_world_size()  # a malformed WORLD_SIZE is one clear line
    if write and is_job_main():
        check_results_folder(results_dir)  # before any work: a long run is never lost at the end
    proto = resolve_protocol(t, protocol, overrides)
    folder = t.output_folder(options)
    with output_lock(folder, f"run --task {t.name}") if folder else contextlib.nullcontext():
        ds = _dataset(t, dataset, ds_kw, options)
        loaded = _model(t, model, weights, options, model_options or {})
        if seeds is not None:
            from satbench.eval.repeats import run_seeds

            agg = run_seeds(t, loaded, ds, proto, options, seeds, write=write and is_job_main(),
                            results_dir=results_dir)
            if write and agg is not None:
                warn_identical_features(agg.get("_members") or [], results_dir)
            return agg
        record = t.run(loaded, ds, proto, options)
    if isinstance(record, list):  # one record per train subset and draw (+ the draws aggregates)
        from satbench.eval.repeats import finish_subset_records

        out = finish_subset_records(record, write=write, results_dir=results_dir)
        if write:
            warn_identical_features(out, results_dir)
        return out
    if record is not None and write:
        record.write(results_dir)
        warn_identical_features([record], results_dir)
    return record


def warn_identical_features(written: Sequence[Any], results_dir: Optional[str | os.PathLike] = None) -> list[str]:
    """Warn (``satbench: warning:`` on stderr, through the ``satbench`` logger) when a record just written has the
    features fingerprint of a record of other weights in ``results_dir`` (:mod:`satbench.records.fingerprints`);
    returns the lines. Unreadable files in the folder are the leaderboard's business: skipped silently here."""
    from satbench.records.fingerprints import clash_lines, clashes, features_fingerprints
    from satbench.records.results import read_records

    mine = [r for r in written if isinstance(r, dict) and features_fingerprints(r)]
    if not mine:
        return []
    lines = clash_lines(clashes(read_records(results_dir, on_skip=lambda path, why: None)), only_involving=mine)
    for line in lines:
        logging.getLogger("satbench").warning("%s", line)
    return lines


def wrap(module: Any, *, patch_size: int, normalization: Any, tokens: str = "cls+patches", pool: Optional[str] = None,
         name: Optional[str] = None, img_size: int = 224) -> Any:
    """Your own ``nn.Module`` as a model ``run`` takes (:func:`satbench.models.wrap.wrap`): the records carry
    its class path and the sha256 of its state dict as the weights identity."""
    from satbench.models.wrap import wrap as _wrap

    return _wrap(module, patch_size=patch_size, normalization=normalization, tokens=tokens, pool=pool, name=name,
                 img_size=img_size)


def _dataset(task: Any, dataset: Any, ds_kw: dict[str, Any], options: Any) -> Any:
    from satbench.data.catalog import resolve_normalization
    from satbench.data.datasets import open_dataset as _open
    from satbench.data.scene import compute_normalization

    family = ds_kw.get("split_family") or "satdino"
    if family not in task.split_families:
        raise DataError(f"--split {family} does not apply to --task {task.name} (it takes: "
                        f"{', '.join(task.split_families)})")
    if dataset is not None and not isinstance(dataset, (str, os.PathLike)):
        if getattr(dataset, "split_family", "satdino") != family:
            raise DataError(f"the dataset given is opened on split family {getattr(dataset, 'split_family', 'satdino')!r}, "
                            f"not {family!r}")
        return dataset
    ds_kw.setdefault("split_family", family)
    norm_spec = ds_kw.pop("normalization", None)
    compute = norm_spec == "compute"
    if norm_spec is not None and not compute and not hasattr(norm_spec, "mean"):
        norm_spec = resolve_normalization(str(norm_spec))
    ds = _open(str(dataset) if dataset is not None else None, kinds=task.dataset_kinds,
               normalization=None if compute else norm_spec, **ds_kw)
    if compute:
        if not hasattr(ds, "samples") or getattr(ds, "spec", None) is None or ds.spec.kind != "scene":
            raise DataError("--normalization compute applies to scene datasets")
        ds.normalization = compute_normalization(ds, "train", progress=options.progress)
        ds.facts_source["normalization"] = "computed from the train split"
        options.extra.setdefault("normalization", ds.normalization)
        options.extra["normalization_computed"] = True
    elif norm_spec is not None:
        options.extra.setdefault("normalization", norm_spec)
    if hasattr(ds, "check"):
        ds.check()  # every split entry exists and names a class folder: fails before any model is loaded
    return ds


def _model(task: Any, model: Any, weights: Optional[str], options: Any, model_options: dict[str, Any]) -> Any:
    from satbench.eval.task import ModelRef

    if isinstance(model, Model):
        return model.loaded
    if not isinstance(model, str):
        return model  # a loaded model
    if not task.needs_loaded_model:
        from satbench.models.registry import get_card

        get_card(model)  # unknown names fail now
        return ModelRef(model, weights, options.seed, dict(model_options), options.trust_checkpoint)
    return load(model, weights, seed=options.seed, trust_checkpoint=options.trust_checkpoint,
                kind=task.weights_kind(options), options=model_options, allow_unpinned=options.allow_unpinned)


# ---------------------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------------------
def read_records(results_dir: Optional[str | os.PathLike] = None, task: Optional[str] = None) -> list[Any]:
    """Every record in ``results_dir`` (default ``$SATBENCH_RESULTS`` or ``./results/runs``), oldest first."""
    from satbench.records.results import read_records as _read

    return _read(results_dir, task)


def leaderboard(records: Optional[Iterable[Any]] = None, *, results_dir: Optional[str | os.PathLike] = None,
                task: Optional[str] = None, fmt: str = "md") -> str:
    """The leaderboard tables (records next to the papers' numbers) as one document in ``fmt``
    (:func:`satbench.leaderboard.public.leaderboard`)."""
    from satbench.leaderboard.public import leaderboard as _leaderboard

    return _leaderboard(records, results_dir=results_dir, task=task, fmt=fmt)
