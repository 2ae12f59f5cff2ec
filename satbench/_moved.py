"""The module paths of satbench 0.2.0, before the package was laid out in rooms, as aliases of the same modules.

``import satbench.backbones`` gives the module object of ``satbench.models.backbones`` (the same object, so a family
registered through either name is registered once). Installed by ``satbench/__init__.py``; resolved only when an old
name is imported, so it costs nothing otherwise. New code imports the new paths (docs/architecture.md).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Optional, Sequence

#: old path (below ``satbench.``) -> new path. (``satbench.io`` and ``satbench.suite`` were modules and are packages
#: now: their packages answer the old names themselves; ``satbench.cli`` still is ``satbench.cli``.)
MOVED = {
    "archives": "io.archives",
    "argtypes": "config.argtypes",
    "backbones": "models.backbones",
    "cache": "eval.cache",
    "cards": "models.cards",
    "checkpoints": "models.checkpoints",
    "commands": "cli.commands",
    "device": "runtime.device",
    "distributed": "runtime.distributed",
    "download": "io.download",
    "eval.seg_settings": "config.seg_settings",
    "eval.statistics": "stats.attach",
    "export": "models.export",
    "extract_api": "eval.extract_folder",
    "features": "models.features",
    "hub": "models.hub",
    "hub_url": "io.hub_url",
    "locking": "io.locking",
    "model_table": "models.model_table",
    "normalization": "data.normalization",
    "plugins": "runtime.plugins",
    "predictions": "records.predictions",
    "protocols": "config.protocols",
    "provenance": "records.provenance",
    "record_checks": "records.checks",
    "record_names": "records.names",
    "registry": "models.registry",
    "resources": "runtime.resources",
    "results": "records.results",
    "rng": "runtime.rng",
    "seg.mmcv_compat": "runtime.mmcv_compat",
    "seg.prepare": "data.prepare_segmentation",
    "settings": "config.settings",
    "verify": "models.verify",
    "weights": "models.weights",
    "yamlio": "config.yamlio",
}

#: old packages: their submodules moved with them.
PACKAGES = ("backbones", "commands")


def new_name(old: str) -> Optional[str]:
    """The current dotted name of the pre-layout module ``old`` (``satbench.x.y``), or None when it did not move."""
    if not old.startswith("satbench."):
        return None
    rel = old[len("satbench."):]
    if rel in MOVED:
        return "satbench." + MOVED[rel]
    head, _, tail = rel.partition(".")
    if head in PACKAGES and tail:
        return f"satbench.{MOVED[head]}.{tail}"
    return None


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.target)
        self._spec = module.__spec__  # the import system overwrites __spec__ with the alias's: put it back
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._spec


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Optional[Sequence[str]] = None,
                  target: Optional[ModuleType] = None) -> Optional[importlib.machinery.ModuleSpec]:
        new = new_name(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new))


def install() -> None:
    """Put the alias finder first on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())
