"""Raw-download preparation: a registry of preparers, one per dataset name.

``PREPARERS[name](src, dst, **options) -> dict`` converts a raw download into satbench's layout and
returns a report (counts, missing files). Dataset families register theirs in their own modules
(``prepare_scene.py`` for the six scene datasets, the segmentation module for Potsdam / Vaihingen /
LoveDA); :func:`get_preparer` imports them all.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from ..errors import UnknownNameError, close_matches

PREPARERS: dict[str, Callable[..., dict[str, Any]]] = {}
_PROVIDERS = ("satbench.data.prepare_scene", "satbench.seg.prepare")


def register_preparer(name: str) -> Callable:
    def deco(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        PREPARERS[name] = fn
        return fn

    return deco


def _load_providers() -> None:
    for mod in _PROVIDERS:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:  # a real missing dependency inside the provider
                raise


def get_preparer(name: str) -> Callable[..., dict[str, Any]]:
    _load_providers()
    if name not in PREPARERS:
        raise UnknownNameError(f"no preparer for dataset {name!r}{close_matches(name, sorted(PREPARERS))}; "
                               f"known: {', '.join(sorted(PREPARERS))}")
    return PREPARERS[name]
