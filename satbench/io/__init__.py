"""Files and transfers: atomic writes (``atomic``), bounded reads of untrusted files (``bounded``), hashes
(``hashing``), locks, archives, downloads and Hugging Face URLs.

``from satbench.io import atomic_write_json`` (the module ``satbench/io.py`` of satbench 0.2.0) still works: the old
names resolve, on first use, in the module that holds them now.
"""

from __future__ import annotations

from typing import Any

#: the modules that took over satbench 0.2.0's ``satbench/io.py``
_FORMER = ("satbench.io.atomic", "satbench.io.bounded", "satbench.io.hashing")


def __getattr__(name: str) -> Any:
    import importlib

    if not name.startswith("__"):
        for mod in _FORMER:
            module = importlib.import_module(mod)
            if hasattr(module, name):
                return getattr(module, name)
    raise AttributeError(f"module 'satbench.io' has no attribute {name!r}")
