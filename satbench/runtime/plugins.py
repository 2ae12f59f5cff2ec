"""Plug-ins: modules that register backbone families, tasks or anything else satbench looks up by name.

Named in ``$SATBENCH_PLUGINS`` (comma-separated importable module names) or declared by installed packages under the
entry-point group ``satbench.runtime.plugins``. They are imported once, before the model registry, the dataset catalog or the
task registry is first read. See ``docs/extending.md``.
"""

from __future__ import annotations

import importlib
import os

from satbench.errors import SatbenchError

_LOADED: set[str] = set()


def plugin_modules() -> list[str]:
    """The plug-in module names: ``$SATBENCH_PLUGINS`` first, then the ``satbench.runtime.plugins`` entry points."""
    names = [m.strip() for m in os.environ.get("SATBENCH_PLUGINS", "").split(",") if m.strip()]
    try:
        from importlib.metadata import entry_points

        names += [ep.value for ep in entry_points(group="satbench.runtime.plugins")]
    except Exception:  # pragma: no cover - broken metadata of an unrelated package
        pass
    return names


def load_plugins() -> None:
    """Import every plug-in module not imported yet (idempotent; a module that fails to import is one error line)."""
    for name in plugin_modules():
        if name in _LOADED:
            continue
        _LOADED.add(name)
        try:
            importlib.import_module(name)
        except ImportError as exc:
            _LOADED.discard(name)
            raise SatbenchError(f"plug-in module {name!r} (from $SATBENCH_PLUGINS or an entry point) cannot be "
                                f"imported: {exc}") from None
