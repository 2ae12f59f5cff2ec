"""satbench: an evaluation-first benchmark suite for self-supervised remote-sensing backbones.

The public Python API (imported on first use, so ``import satbench`` stays light)::

    satbench.list_models()                      # registered model cards
    satbench.load_model(name, weights=...)      # -> Model with .features(images) and .extract(folder_or_split)
    satbench.open_dataset(name_or_dir)          # catalog name, bundled subset or folder
    satbench.run(task, model=..., dataset=..., protocol=..., **overrides)   # -> Record
    satbench.wrap(module, patch_size=16, normalization="imagenet", tokens="cls+patches")  # your own nn.Module
    satbench.list_protocols(task=None), satbench.list_tasks(), satbench.list_datasets()
    satbench.read_records(results_dir), satbench.leaderboard(records)
"""

from __future__ import annotations

from typing import Any

from satbench import _moved
from satbench._version import __version__

_moved.install()  # the pre-0.3 module paths (satbench.backbones, satbench.settings, ...) as aliases

__all__ = ["__version__", "list_models", "load_model", "open_dataset", "run", "list_protocols", "list_tasks",
           "list_datasets", "read_records", "leaderboard", "Model", "wrap"]


def __getattr__(name: str) -> Any:
    if name in __all__ and name != "__version__":
        from satbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'satbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
