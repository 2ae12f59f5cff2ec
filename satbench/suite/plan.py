"""``satbench suite``'s plan: every classification task of the papers' tables on every dataset present, one record each.

The suite is a plan and a loop. :func:`make_plan` decides, for each (task, dataset) pair, one of

* ``run``: nothing comparable has been recorded yet (or ``force``);
* ``skip``: a record in the results folder already holds a comparable run (:func:`record_mismatch` says what
  "comparable" means: same task, model, weights, protocol hash after overrides, dataset split hashes and
  normalisation, bf16, model build options and seed);
* ``missing``: the dataset is not under the data root (or a folder does not open), or the weights are not available
  offline (with the command or the path that fixes it).

Datasets are catalog names or the user's own scene folders (:class:`FolderSpec`: a path, or a folder under the data
root that is not in the catalog), which the runs open exactly as ``satbench run --dataset DIR`` does.

:func:`run_suite` loads the model once, runs every ``run`` item through :func:`satbench.api.run` (one record each,
written as soon as it is made) with one shared feature cache, and returns what it did, including the forward passes
it did and the ones independent runs without a cache would have done. The suite keeps no state of its own: the
records already written and the feature cache are its state, so an interrupted suite resumes by running the same
call again. Nothing here prints: notes go to the ``satbench`` logger and progress to the ``on_event`` callback.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from satbench.errors import SatbenchError, UnknownNameError

from satbench.suite.keys import RunKey, WeightsId, comparable, model_option_expectation

log = logging.getLogger("satbench")

#: Tasks run when ``tasks`` is not given: kNN and the cheap cached linear probe. ``linear`` (the paper's fMoW probe)
#: and ``finetune`` train for hours and run only when named.
DEFAULT_TASKS = ("knn", "cached-linear")
#: Dataset kinds of the classification tables (segmentation has its own command and table).
CLASSIFICATION_KINDS = ("scene", "fmow")
#: Tasks that never change the backbone's weights: they share the one loaded model. Every other task gets a copy, so a
#: fine-tuning run can never leak its trained weights into the next run (whose record names the original weights).
READ_ONLY_TASKS = ("knn", "cached-linear")

RUN, SKIP, MISSING = "run", "skip", "missing"


class SuiteError(SatbenchError):
    """A suite that cannot be planned or run (bad selection, nothing to run)."""


# ---------------------------------------------------------------------------------------------------------------------
# What makes two runs comparable
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class SuiteConfig:
    """What to run and how (the ``satbench suite`` options)."""

    model: str = "satdino-vit_small-16"
    weights: Optional[str] = None
    seed: int = 0
    tasks: Optional[Sequence[str]] = None
    datasets: Optional[Sequence[str]] = None
    data_root: Optional[str] = None
    results_dir: Optional[str] = None
    #: task -> protocol name or YAML path (default: the task's)
    protocols: dict[str, str] = field(default_factory=dict)
    #: task -> protocol parameter overrides (recorded, as ``satbench run``'s)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_options: dict[str, Any] = field(default_factory=dict)
    force: bool = False
    fail_fast: bool = False
    device: str = "auto"
    bf16: bool = False
    batch_size: int = 64
    num_workers: Optional[int] = None
    trust_checkpoint: bool = False
    allow_unpinned: bool = False
    train_csv: Optional[str] = None
    val_csv: Optional[str] = None


@dataclass
class WeightsPlan:
    """The weights as known before loading: their identity (None: only known once loaded) or why they are missing."""

    spec: Optional[str]
    identity: Optional[WeightsId] = None
    missing: str = ""
    note: str = ""


@dataclass
class PlanItem:
    """One (task, dataset) pair of the plan."""

    task: str
    dataset: str
    status: str
    detail: str = ""
    record: Optional[str] = None
    images: int = 0
    key: Optional[RunKey] = None
    kind: str = "scene"
    #: what the run opens: the catalog name, or a folder's resolved path (:class:`FolderSpec`)
    source: Optional[str] = None

    def describe(self) -> str:
        """``run``, ``skip (record PATH)`` or ``missing: WHY``."""
        if self.status == SKIP:
            return f"skip (record {self.record})"
        if self.status == MISSING:
            return f"missing: {self.detail}"
        return RUN + (f" ({self.detail})" if self.detail else "")


@dataclass
class Plan:
    model: str
    weights: WeightsPlan
    items: list[PlanItem]
    results_dir: Path
    data_root: Optional[Path]

    def by_status(self, status: str) -> list[PlanItem]:
        return [i for i in self.items if i.status == status]


def classification_tasks() -> list[Any]:
    """Registered tasks with a leaderboard headline that run on classification datasets (scene, fMoW)."""
    from satbench.eval.task import list_tasks

    return [t for t in list_tasks() if t.headline is not None and set(t.dataset_kinds) & set(CLASSIFICATION_KINDS)]


def select_tasks(names: Optional[Sequence[str]]) -> list[Any]:
    """The tasks to run (default :data:`DEFAULT_TASKS`), in the order given; unknown or non-classification names are
    one error listing the ones that apply."""
    from satbench.eval.task import get_task

    known = {t.name: t for t in classification_tasks()}
    out = []
    for name in (names or DEFAULT_TASKS):
        if name not in known:
            get_task(name)  # an unknown name lists close matches of every task
            raise UnknownNameError(f"task {name!r} is not a classification task of the leaderboard's tables; the suite "
                                   f"runs: {', '.join(sorted(known))}")
        if known[name] not in out:
            out.append(known[name])
    return out


def paper_kinds(task: Any) -> tuple[str, ...]:
    """The dataset kinds ``task`` runs on by default: for a task whose default protocol is the paper's, the kinds of
    the datasets the paper's table reports (kNN, fine-tuning: scene; linear: fMoW); otherwise every kind it takes."""
    from satbench.data.catalog import find_dataset_spec
    from satbench.leaderboard.references import load_references

    h = task.headline
    kinds = tuple(k for k in task.dataset_kinds if k in CLASSIFICATION_KINDS)
    if h is None or not h.reference_key or task.default_protocol != h.reference_protocol:
        return kinds
    names: set[str] = set()
    for ref in load_references():
        values = (ref.get(h.reference_key) or {}).get("values") if isinstance(ref.get(h.reference_key), dict) else None
        if isinstance(values, dict):
            names.update(str(n) for n in values)
    found = {s.kind for s in (find_dataset_spec(n) for n in names) if s is not None}
    return tuple(k for k in kinds if k in found) or kinds


@dataclass(frozen=True)
class FolderSpec:
    """A dataset folder of the user's own named in ``--datasets`` (a folder path, or a folder under the data root
    that is not in the catalog): opened, recorded and resumed exactly as ``satbench run --dataset DIR`` does."""

    #: as named on the command line (the plan shows it)
    name: str
    #: the folder, resolved: what :func:`satbench.api.run` gets as its dataset
    path: Path
    kind: str = "scene"
    bundled: bool = False


def _looks_like_path(name: str) -> bool:
    return os.sep in name or (os.altsep is not None and os.altsep in name) or name.startswith((".", "~"))


def resolve_folder(name: str, root: Optional[Path]) -> Optional[FolderSpec]:
    """``name`` as a folder of the user's own: an existing folder path, or ``<data root>/<name>``; None when it is
    neither. A path that does not exist is one error naming it."""
    from satbench.data.datasets import dataset_kind_of

    p = Path(name).expanduser()
    if not p.is_dir() and root is not None and not _looks_like_path(name) and (root / name).is_dir():
        p = root / name
    if not p.is_dir():
        if _looks_like_path(name):
            raise SuiteError(f"--datasets {name}: dataset folder {p} does not exist")
        return None
    kind = dataset_kind_of(str(p))
    if kind not in CLASSIFICATION_KINDS:
        raise SuiteError(f"--datasets {name}: {p} is a {kind} dataset folder; the suite runs the classification "
                         f"tables (scene and fMoW datasets)")
    return FolderSpec(name, p.resolve(), kind)


def select_datasets(names: Optional[Sequence[str]], root: Optional[Path] = None) -> list[Any]:
    """Catalog specs and folders: the named ones (a catalog name of any kind a task of the suite takes, bundled
    subsets too; else a folder path or a folder under ``root``, :func:`resolve_folder`) or every scene and fMoW
    dataset of the catalog except bundled subsets, in leaderboard order. A name that is neither is one error."""
    from satbench.data.catalog import find_dataset_spec, get_dataset_spec, list_datasets

    if names:
        out: list[Any] = []
        for n in names:
            spec: Any = find_dataset_spec(n) if not _looks_like_path(n) else None
            if spec is None:
                spec = resolve_folder(n, root)
            if spec is None:
                try:
                    get_dataset_spec(n)  # the catalog's own error: close matches and the known names
                except UnknownNameError as exc:
                    where = f"no folder {root / n}" if root is not None else "no data root (--data-root)"
                    raise UnknownNameError(f"{exc}; nor is it a dataset folder ({where}; a folder path works "
                                           f"too: --datasets ./{n})") from None
            if spec.kind not in CLASSIFICATION_KINDS:
                raise SuiteError(f"dataset {spec.name} is a {spec.kind} dataset; the suite runs the classification "
                                 f"tables (scene and fMoW datasets)")
            if spec not in out:
                out.append(spec)
        return out
    return [s for s in list_datasets() if s.kind in CLASSIFICATION_KINDS and not s.bundled]


def pairs(tasks: Sequence[Any], datasets: Sequence[Any], named: bool) -> list[tuple[Any, Any]]:
    """(task, dataset spec) pairs, dataset-major (one dataset's tasks run together): named datasets with every task
    that takes their kind; otherwise the kinds of :func:`paper_kinds`."""
    kinds = {t.name: (t.dataset_kinds if named else paper_kinds(t)) for t in tasks}
    return [(t, d) for d in datasets for t in tasks if d.kind in kinds[t.name]]


def data_root(config: SuiteConfig) -> Optional[Path]:
    """``config.data_root`` or ``$SATBENCH_DATA``."""
    from satbench.data.scene import default_data_root

    return Path(config.data_root).expanduser() if config.data_root else default_data_root()


def _missing_dataset_hint(spec: Any, root: Optional[Path]) -> str:
    from satbench.data.sources import SOURCES, public_names

    where = str(root) if root is not None else "ROOT"
    if spec.kind == "fmow":
        return ("fMoW needs --train-csv and --val-csv (written by `satbench data fmow-csv`) and the images under "
                "--data-root")
    if spec.name in public_names():
        return f"get it with `satbench data download {spec.name} --root {where}`"
    if spec.name in SOURCES:
        return (f"no public source: `satbench data download {spec.name}` says where to get it; then `satbench data "
                f"prepare {spec.name} --src DIR --out {where}`")
    return f"put it at {where}/{spec.name} (images/<class>/..., train.txt, val.txt)"


def open_planned_dataset(spec: Any, config: SuiteConfig) -> tuple[Optional[Any], str]:
    """``(opened dataset, "")`` when ``spec`` is present (it opens and every split entry has its file), else
    ``(None, why + what to do)``. Nothing is downloaded."""
    from satbench.data.datasets import open_dataset

    root = data_root(config)
    if isinstance(spec, FolderSpec):
        try:  # as `satbench run --dataset DIR` opens it (its own splits, size and statistics found by the task)
            ds = open_dataset(str(spec.path), kinds=(spec.kind,))
            ds.check()
        except SatbenchError as exc:
            return None, f"{spec.name} does not open: {exc}"
        return ds, ""
    if spec.kind == "fmow":
        if not (config.train_csv and config.val_csv) or root is None:
            return None, _missing_dataset_hint(spec, root)
    elif not spec.bundled:
        if root is None:
            return None, f"no data root (pass --data-root or set $SATBENCH_DATA); {_missing_dataset_hint(spec, None)}"
        if not (root / spec.name).is_dir():
            return None, f"not under {root}; {_missing_dataset_hint(spec, root)}"
    try:
        ds = open_dataset(spec.name, kinds=(spec.kind,), data_root=root,
                          **({"train_csv": config.train_csv, "val_csv": config.val_csv} if spec.kind == "fmow" else {}))
        for split in ("train", "val"):
            ds.samples(split)  # every entry has its file: a broken folder is reported here, not after a model load
    except SatbenchError as exc:
        return None, f"{spec.name} does not open: {exc}"
    return ds, ""


def weights_plan(config: SuiteConfig, kind: str = "pretrain") -> WeightsPlan:
    """The weights' identity before loading, without downloading anything: ``random`` (the seed), a file or folder
    (its sha256), the card's weights in the local cache (its sha256); otherwise when downloads are possible the
    card's pinned sha256 (or unknown until loaded), and when they are not, why they are missing and where to put
    them."""
    from satbench.models.hub import is_hub_spec
    from satbench.io.hashing import sha256_file
    from satbench.models.registry import get_card
    from satbench.models.weights import cached_weight_path, default_weights_spec, is_offline, resolve_weights

    card = get_card(config.model)
    spec = default_weights_spec(card, config.weights, kind)  # a family's own default (hf-transformers: its snapshot)
    if spec == "random":
        return WeightsPlan(spec, WeightsId(seed=config.seed))
    if is_hub_spec(spec):
        if not is_offline():
            return WeightsPlan(spec, note=f"{spec} is resolved when the model loads; records are checked then")
        from satbench.models.hub import resolve_hub_weights

        try:  # offline: found in the hub cache without any network call, or missing
            return WeightsPlan(spec, WeightsId(sha256=sha256_file(resolve_hub_weights(card, spec, kind).path)))
        except SatbenchError as exc:
            return WeightsPlan(spec, missing=str(exc))
    if spec is not None:
        path, _ = resolve_weights(card, spec, kind, download=False)  # a bad path is an error now
        return WeightsPlan(spec, WeightsId(sha256=sha256_file(path)))
    entry = card.weights.get(kind) if isinstance(card.weights, dict) else None
    if not entry:
        return WeightsPlan(spec, missing=f"model {card.name} declares no {kind} weights; pass --weights PATH or "
                                         f"--weights random")
    target = cached_weight_path(card, kind)
    if target.is_file():
        return WeightsPlan(spec, WeightsId(sha256=sha256_file(target)))
    from satbench.io.network import download_blocker, hub_endpoint

    source = hub_endpoint() if entry.get("hf_repo") else entry.get("url")
    why = download_blocker(source) if source else "the card names no source to download from"
    if why:
        return WeightsPlan(spec, missing=f"weights for {card.name} ({kind}) are not in the cache and {why}; place the "
                                         f"file at {target} (or pass --weights PATH)")
    pinned = entry.get("sha256")
    return WeightsPlan(spec, WeightsId(sha256=pinned) if pinned else None,
                       note=f"the weights are downloaded to {target} first")


def parse_sets(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["TASK.KEY=VALUE", ...]`` -> ``{task: {key: value}}``; values are YAML (``0.125``, ``[1.0, 0.5]``, ``5``)."""
    import yaml

    from satbench.errors import ProtocolError
    from satbench.config.yamlio import load_yaml

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        task, dot, key = name.strip().partition(".")
        if not sep or not dot or not task or not key:
            raise ProtocolError(f"--set {item!r}: expected TASK.KEY=VALUE (e.g. knn.scales=[1.0,0.5])")
        try:
            value = load_yaml(raw, f"--set {name}", ProtocolError) if raw.strip() else None
        except yaml.YAMLError:
            raise ProtocolError(f"--set {item!r}: the value is not valid YAML") from None
        out.setdefault(task, {})[key] = value
    return out


def parse_protocols(items: Sequence[str]) -> dict[str, str]:
    """``["TASK=PROTOCOL", ...]`` -> ``{task: protocol name or YAML path}``."""
    out: dict[str, str] = {}
    for item in items:
        task, sep, proto = item.partition("=")
        if not sep or not task.strip() or not proto.strip():
            raise SuiteError(f"--protocol {item!r}: expected TASK=PROTOCOL (e.g. knn=scalemae-knn-v2)")
        out[task.strip()] = proto.strip()
    return out


def _coerce(value: Any, default: Any) -> Any:
    """A ``--set`` value shaped like the protocol's: one value for a list parameter is a one-element list, and a
    number YAML 1.1 reads as text (``1e-3``) is the number."""
    if isinstance(default, list) and not isinstance(value, list):
        value = [value]
    if isinstance(value, list):
        proto = default[0] if isinstance(default, list) and default else None
        return [_coerce(v, proto) for v in value]
    if isinstance(value, str) and isinstance(default, float):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def resolve_protocols(tasks: Sequence[Any], config: SuiteConfig) -> dict[str, Any]:
    """Each task's protocol with its overrides, checked strictly now (a bad ``--set`` fails before any work).
    ``config.overrides`` are shaped like the protocol's parameters here (:func:`_coerce`), so runs record the same."""
    from satbench.api import resolve_protocol
    from satbench.config.protocols import load_protocol

    unknown = sorted((set(config.protocols) | set(config.overrides)) - {t.name for t in tasks})
    if unknown:
        raise SuiteError(f"--protocol/--set name task {unknown[0]!r}, which this suite does not run (tasks: "
                         f"{', '.join(t.name for t in tasks)})")
    out = {}
    for t in tasks:
        name = config.protocols.get(t.name)
        ov = config.overrides.get(t.name)
        if ov:
            params = load_protocol(name or t.default_protocol).params
            ov = config.overrides[t.name] = {k: _coerce(v, params.get(k)) for k, v in ov.items()}
        out[t.name] = resolve_protocol(t, name, ov)
    return out


def read_records(results_dir: Path) -> list[dict[str, Any]]:
    from satbench.records.results import read_records

    return read_records(results_dir, on_skip=lambda p, why: log.warning("skipped %s: %s", p, why))


def make_plan(config: SuiteConfig, *, weights: Optional[WeightsPlan] = None,
              records: Optional[list[dict[str, Any]]] = None) -> Plan:
    """The suite's plan (see the module docstring). ``weights``: a known identity (after loading); ``records``: the
    results folder's records when already read. Unknown tasks, datasets, models and bad overrides raise."""
    from satbench.models.registry import get_card
    from satbench.records.results import default_results_dir

    card = get_card(config.model)
    tasks = select_tasks(config.tasks)
    specs = select_datasets(config.datasets, data_root(config))
    protocols = resolve_protocols(tasks, config)
    expected_opts, default_opts = model_option_expectation(card, config.model_options)
    wp = weights if weights is not None else weights_plan(config)
    results_dir = Path(config.results_dir) if config.results_dir else default_results_dir()
    recs = records if records is not None else read_records(results_dir)
    opened: dict[str, tuple[Optional[Any], str]] = {}
    items: list[PlanItem] = []
    for task, spec in pairs(tasks, specs, named=bool(config.datasets)):
        source = str(spec.path) if isinstance(spec, FolderSpec) else spec.name
        if source not in opened:
            opened[source] = open_planned_dataset(spec, config)
        ds, why = opened[source]
        if ds is None:
            items.append(PlanItem(task.name, spec.name, MISSING, why, kind=spec.kind, source=source))
            continue
        n_images = len(ds.samples("train")) + len(ds.samples("val"))
        if wp.missing:
            items.append(PlanItem(task.name, spec.name, MISSING, wp.missing, images=n_images, kind=spec.kind,
                                  source=source))
            continue
        desc = ds.describe()
        key = None
        if wp.identity is not None:
            effective, _ = task.effective_protocol(protocols[task.name], ds)  # what the run will record
            key = RunKey(task=task.name, model=card.name, weights=wp.identity, protocol_hash=effective.hash,
                         dataset=desc.get("name", spec.name), split_hashes=dict(desc.get("split_hashes") or {}),
                         normalization=desc.get("normalization"), bf16=config.bf16, model_options=expected_opts, option_defaults=default_opts, seed=config.seed)
        found = None
        if key is not None and not config.force:
            found = next((r for r in reversed(recs) if comparable(r, key)), None)
        if found is not None:
            items.append(PlanItem(task.name, spec.name, SKIP, record=str(found.get("_path", "?")), images=n_images,
                                  key=key, kind=spec.kind, source=source))
        else:
            items.append(PlanItem(task.name, spec.name, RUN, wp.note if key is None else "", images=n_images, key=key,
                                  kind=spec.kind, source=source))
    return Plan(card.name, wp, items, results_dir, data_root(config))


# ---------------------------------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------------------------------
