"""One interface for every task, and the task registry.

A task is one module (``satbench/eval/task_<name>.py``, or a plug-in module, see :func:`load_plugins`) defining a
:class:`Task` subclass decorated with :func:`register_task`. It declares its name, its default protocol, the typed
settings its protocols must satisfy, its own command-line options, what kinds of dataset it runs on, and the headline
metric the leaderboard shows; its :meth:`Task.run` takes a loaded model, an opened dataset and a protocol and returns
a :class:`~satbench.records.results.Record`. Nothing here parses a command line or prints: ``satbench.cli.commands.run`` does
that, and :func:`satbench.api.run` does the wiring for Python callers.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from satbench.errors import UnknownNameError, close_matches

TASKS: dict[str, "Task"] = {}


@dataclass(frozen=True)
class Headline:
    """What the leaderboard shows for a task: the summary key, its label, the table it belongs to, the paper
    reference key (``results/reference/*.json``) and the protocol whose paper numbers are comparable."""

    metric: str
    label: str
    table: str
    title: str
    reference_key: Optional[str] = None
    reference_protocol: Optional[str] = None
    #: regex over protocol names the papers' numbers are comparable with (default: ``reference_protocol`` exactly)
    paper_protocol: Optional[str] = None
    #: columns are (dataset, crop) instead of datasets
    by_crop: bool = False
    #: records carry ``summary.top1_per_scale`` (the leaderboard adds a per-scale table and plot)
    per_scale: bool = False
    #: protocol parameters that, when overridden, depart from the paper's recipe
    recipe_switches: tuple[str, ...] = ()
    #: the recipe's training length (a run with fewer iterations is a short run, never compared with a paper)
    full_iters: Optional[int] = None


@dataclass
class RunOptions:
    """How to run (never what to compute: that is the protocol). Recorded where it matters."""

    device: str = "auto"
    bf16: bool = False
    batch_size: int = 64
    num_workers: int = 1
    use_cache: bool = True
    cache_dir: Optional[str] = None
    cache_identity: Optional[str] = None
    progress: bool = True
    seed: int = 0
    output_dir: Optional[str] = None
    resume: bool = False
    trust_checkpoint: bool = False
    allow_unpinned: bool = False
    #: record a run whose test features collapsed, marked, instead of failing (:mod:`satbench.eval.feature_guard`)
    allow_collapsed_features: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def feature_cache(self) -> Any:
        """The feature cache for this run, its folder checked before any work (:meth:`FeatureCache.checked`: an
        unusable folder means one warning and no caching, recorded)."""
        from satbench.eval.cache import FeatureCache

        return FeatureCache.checked(self.cache_dir, enabled=self.use_cache, identity=self.cache_identity)


@dataclass(frozen=True)
class ModelRef:
    """A model by name and weights spec, not loaded yet: what tasks that build their own model receive (segmentation
    builds the backbone inside mmseg's registry from these, strictly, like every load)."""

    name: str
    weights: Optional[str] = None
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    trust_checkpoint: bool = False

    @property
    def card(self) -> Any:
        from satbench.models.registry import get_card

        return get_card(self.name)


class Task:
    """Base class of every task (see the module docstring)."""

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""
    default_protocol: ClassVar[str] = ""
    #: The ``task:`` field of the protocol files this task accepts (``tasks/<that>/...``).
    protocol_task: ClassVar[str] = ""
    #: The settings dataclass its protocols' ``params`` must satisfy (strict: unknown keys, wrong types refused).
    settings: ClassVar[Optional[type]] = None
    dataset_kinds: ClassVar[tuple[str, ...]] = ("scene",)
    headline: ClassVar[Optional[Headline]] = None
    default_num_workers: ClassVar[int] = 1
    #: Whether the task runs data-parallel under torchrun (else it refuses more than one process).
    distributed: ClassVar[bool] = False
    #: False: :meth:`run` receives a :class:`ModelRef` and builds the model itself.
    needs_loaded_model: ClassVar[bool] = True
    #: The task extracts through the feature cache (its parser gets --no-cache, --cache-dir, --cache-identity).
    uses_feature_cache: ClassVar[bool] = False
    #: A trained probe with a training seed: ``--seeds`` repeats it (:func:`satbench.eval.repeats.run_seeds`).
    supports_seeds: ClassVar[bool] = False
    #: Takes ``--train-fraction`` / ``--shots`` / ``--draws`` (subsets of the train split); :meth:`run` then returns
    #: a list of records, one per subset and draw.
    supports_subsets: ClassVar[bool] = False
    #: Takes ``--corruptions`` / ``--severities`` (:mod:`satbench.eval.corruption_eval`): the val split is also
    #: evaluated under each (type, severity) of a corruption protocol, recorded in the same record.
    supports_corruptions: ClassVar[bool] = False
    #: With ``supports_corruptions``: whether the geometric types (rotate, scale, translate) apply; False for a task
    #: whose labels are per pixel (segmentation: the label map would need the same warp), which then refuses them and
    #: reads ``all`` as the photometric types.
    geometric_corruptions: ClassVar[bool] = True
    #: The split families (``--split``) the task runs on: ``satdino`` (SatDINO's official splits) for every task;
    #: ``torchgeo`` (TorchGeo's train/val/test) for a task that reports a test split and keeps val held out.
    split_families: ClassVar[tuple[str, ...]] = ("satdino",)

    def output_folder(self, options: "RunOptions") -> Optional[str]:
        """The folder this run owns (checkpoints, work dir): locked for the whole run, before any model is loaded."""
        return None

    def seed_options(self, options: "RunOptions", seed: int) -> "RunOptions":
        """The options of one seed of a ``--seeds`` run: ``seed`` as the training seed and, when ``--output-dir`` is
        given, its own sub-folder ``seed<seed>`` (checkpoints of different seeds never meet)."""
        import dataclasses
        import os

        out = os.path.join(options.output_dir, f"seed{seed}") if options.output_dir else None
        return dataclasses.replace(options, seed=int(seed), output_dir=out, extra=dict(options.extra))

    def weights_kind(self, options: "RunOptions") -> str:
        """Which declared weights of the card to load (``pretrain`` unless the task says otherwise)."""
        return "pretrain"

    def add_arguments(self, parser: argparse._ArgumentGroup) -> None:
        """Add this task's own command-line options."""

    def protocol_overrides(self, args: argparse.Namespace) -> dict[str, Any]:
        """Protocol parameters the command line overrides (recorded in the record)."""
        return {}

    def complete_overrides(self, protocol: Any, overrides: dict[str, Any]) -> dict[str, Any]:
        """Overrides that follow from others (e.g. kNN's reported k when the k list changes); default: none."""
        return overrides

    def effective_protocol(self, protocol: Any, dataset: Any) -> tuple[Any, dict[str, Any]]:
        """``(protocol, notes)``: the protocol a run of ``dataset`` records once it has adapted to the dataset (e.g.
        kNN's k list clipped to a small train split), and the record's notes on why. The run and the suite's plan both
        call this, so a planned protocol hash is the one the record will carry. Default: ``protocol`` unchanged."""
        return protocol, {}

    def leaderboard_table(self, record: Any) -> Optional[str]:
        """The leaderboard table (protocol family) a record of this task belongs to: its headline's table by
        default. ``record`` is untrusted (read from a file): a task that looks inside must check types."""
        return self.headline.table if self.headline is not None else None

    def run_options(self, args: argparse.Namespace) -> dict[str, Any]:
        """Task-specific run options from the command line (go to :attr:`RunOptions.extra`)."""
        return {}

    def settings_for(self, protocol: Any) -> Optional[type]:
        """The settings type ``protocol`` must satisfy (default: :attr:`settings`)."""
        return self.settings

    def accepts(self, protocol: Any) -> bool:
        """Whether ``protocol`` is one of this task's (by default: its ``task:`` field)."""
        return protocol.task == self.protocol_task

    def run(self, model: Any, dataset: Any, protocol: Any, options: RunOptions) -> Any:
        """Evaluate ``model`` on ``dataset`` under ``protocol``; return the record (not written)."""
        raise NotImplementedError

    def describe_result(self, record: Any) -> str:
        """A table of the record for the terminal."""
        return ""


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: register a task under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"task class {cls.__name__} has no name")
    TASKS[cls.name] = cls()
    return cls


_BUILTIN_LOADED = False


def load_plugins() -> None:
    """Import the built-in task modules (``satbench/eval/task_*.py``) and the plug-in modules
    (:mod:`satbench.runtime.plugins`: ``$SATBENCH_PLUGINS`` and entry points). Idempotent."""
    global _BUILTIN_LOADED
    if not _BUILTIN_LOADED:
        _BUILTIN_LOADED = True
        from satbench import eval as eval_pkg

        for info in sorted(pkgutil.iter_modules(eval_pkg.__path__), key=lambda m: m.name):
            if info.name.startswith("task_"):
                importlib.import_module(f"{eval_pkg.__name__}.{info.name}")
    from satbench.runtime.plugins import load_plugins as _load

    _load()


def list_tasks() -> list[Task]:
    """Every registered task, sorted by name."""
    load_plugins()
    return [TASKS[k] for k in sorted(TASKS)]


def get_task(name: str) -> Task:
    """The registered task ``name``; unknown names list close matches."""
    load_plugins()
    if name not in TASKS:
        names = sorted(TASKS)
        raise UnknownNameError(f"unknown task {name!r}{close_matches(name, names)}; known: {', '.join(names)}")
    return TASKS[name]
