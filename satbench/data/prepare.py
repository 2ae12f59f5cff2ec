"""Raw-download preparation, chosen by the dataset's catalog kind.

``get_preparer(name)(src, dst, **options) -> dict`` converts a raw download into satbench's layout and returns a
report (counts, missing files): scene datasets with official split files through
:func:`satbench.data.prepare_scene.prepare_scene`, segmentation datasets through mmseg's own converters
(:func:`satbench.data.prepare_segmentation.convert`, imported only then: it needs mmsegmentation).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

from satbench.errors import DataError, UnknownNameError
from satbench.data.catalog import find_dataset_spec, list_datasets


def preparable() -> list[str]:
    """Names of the catalog datasets ``data prepare`` can convert."""
    return [s.name for s in list_datasets() if (s.kind == "scene" and s.official_splits and not s.bundled)
            or s.kind == "segmentation"]


def get_preparer(name: str) -> Callable[..., dict[str, Any]]:
    """The preparer of dataset ``name`` (see the module docstring)."""
    from satbench.errors import close_matches

    spec = find_dataset_spec(name)
    if spec is None:
        known = preparable()
        raise UnknownNameError(f"no preparer for dataset {name!r}{close_matches(name, known)}; known: {', '.join(known)}")
    if spec.kind == "scene" and spec.official_splits and not spec.bundled:
        from satbench.data.prepare_scene import prepare_scene

        return partial(prepare_scene, spec.name)
    if spec.kind == "segmentation":
        from satbench.data.prepare_segmentation import convert

        return partial(convert, spec.name)
    raise DataError(f"dataset {spec.name!r} ({spec.kind}) has nothing to prepare: "
                    + ("it is bundled with satbench" if spec.bundled else
                       "use `satbench data fmow-csv` for fMoW" if spec.kind == "fmow" else "no official split files"))
