"""``satbench extract``'s API: features of an image folder or a split file at one protocol size, with a JSON sidecar.

The features pass the features guard of every task (:mod:`satbench.eval.feature_guard`) before anything is written:
NaN / infinite features are always an error; collapsed features are an error unless ``allow_collapsed_features``
(``--allow-collapsed-features``), which writes them with the check in the sidecar (``features_check``, marked
``collapsed: true`` and ``allowed_by``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import numpy as np

from satbench.data.catalog import find_dataset_spec
from satbench.data.normalization_choice import choose_normalization
from satbench.data.images import IMAGE_EXTENSIONS
from satbench.data.scene import Sample, _entry_rel, _read_split
from satbench.models.backbones.base import check_input_size
from satbench.data.transforms import knn_transform, knn_transform_spec
from satbench.errors import DataError, InputSizeError, SatbenchError
from satbench.eval.extract import ExtractStats, View, extract_views
from satbench.eval.feature_guard import array_stats, fingerprint, judge, section
from satbench.models.features import FeatureExtractor
from satbench.io.atomic import atomic_write_bytes, atomic_write_json
from satbench.io.hashing import sha256_bytes
from satbench.data.normalization import Normalization
from satbench.models.weights import LoadedModel


def list_images(path: Path) -> tuple[list[Sample], Optional[str], Path]:
    """Samples of an image folder (recursive, sorted) or a split file (file order).

    Returns ``(samples, split_sha256_or_None, dataset_folder)``. Split-file lines are resolved against ``<dir>/images/``
    when that folder exists (the official layout), else against the split file's folder.
    """
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise DataError(f"image folder {path} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        listing = "\n".join(str(p.relative_to(path)) for p in files).encode()
        folder = path.parent if path.name == "images" else path
        return [Sample(p, -1, i + 1) for i, p in enumerate(files)], sha256_bytes(listing), folder
    if not path.is_file():
        raise DataError(f"{path} does not exist (expected an image folder or a split file)")
    sf = _read_split(path)
    base = path.parent / "images" if (path.parent / "images").is_dir() else path.parent
    samples = []
    for line_no, entry in sf.lines:
        rel = _entry_rel(entry, path, line_no)
        p = base / rel
        if not p.is_file():
            raise DataError(f"{path}:{line_no}: entry {entry!r} has no file at {p}")
        samples.append(Sample(p, -1, line_no))
    return samples, sf.sha256, path.parent


def resolve_normalization(spec: Optional[str], loaded: LoadedModel, dataset_folder: Path) -> Normalization:
    """``None`` -> the model's declared normalisation; ``dataset`` -> the catalog dataset's table by folder name;
    else a preset, a catalog dataset name, or ``mean=..;std=..`` (:mod:`satbench.data.normalization_choice`)."""
    name = dataset_folder.resolve().name
    ds = find_dataset_spec(name) if spec == "dataset" else None
    return choose_normalization(spec, where="--normalization", dataset_norm=ds.norm if ds is not None else None,
                                dataset_name=f"folder {name!r} (not a catalog dataset)",
                                model_norm=loaded.card.norm)


def resolve_input_res(spec: Optional[str], loaded: LoadedModel, size: int) -> tuple[Optional[float], Optional[str]]:
    """``--input-res`` -> ``(input_res, policy)``.

    Backbones whose family takes an input resolution (Scale-MAE): ``None`` or ``"protocol"`` -> the policy of
    Scale-MAE's own kNN protocol (:data:`~satbench.eval.knn_protocols.SCALEMAE_KNN_PROTOCOL`: ``224 / size``,
    ``eval_gsd``); a positive number -> that ratio (``1.0`` = the official code without ``--eval_gsd``). Other
    backbones: ``None`` only.
    """
    from satbench.models.backbones import FAMILIES, get_family
    from satbench.eval.knn_protocols import SCALEMAE_KNN_PROTOCOL
    from satbench.config.protocols import load_protocol

    family = get_family(loaded.card.family)
    if not family.takes_input_res:
        if spec is not None:
            takers = [f.name for f in FAMILIES.values() if f.takes_input_res]
            raise SatbenchError(f"--input-res applies to backbones that take an input resolution (families: "
                                f"{', '.join(takers)}), not {loaded.card.name} (family {family.name})")
        return None, None
    if spec is None or spec == "protocol":
        policy = str(load_protocol(SCALEMAE_KNN_PROTOCOL, task="knn").get("input_res"))
        return family.input_res(policy, size), f"{policy} (protocol {SCALEMAE_KNN_PROTOCOL})"
    try:
        value = float(spec)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise SatbenchError(f"--input-res {spec!r}: expected 'protocol' or a positive number (e.g. 1.0)")
    return value, "value"


def extract_features(loaded: LoadedModel, images: Path, size: int, *, normalization: Optional[str] = None,
                     device: str = "auto", bf16: bool = False, batch_size: int = 64, num_workers: int = 1,
                     progress: bool = True, input_res: Optional[str] = None, dist: Any = None,
                     allow_collapsed_features: bool = False) -> tuple[Optional[np.ndarray], dict[str, Any]]:
    """``[n, D]`` float32 normed-CLS features of an image folder or split file with the kNN transform at ``size`` px,
    and the description of how they were made (the sidecar of :func:`extract_to_file`). ``input_res``: see
    :func:`resolve_input_res`. The size is checked against the backbone before any image is listed or decoded.
    Under torchrun (``dist``) every rank extracts a shard; rank 0 gets the features, the others None. The features are
    checked (see the module docstring) and the check is the description's ``features_check``."""
    if size < loaded.card.patch_size:
        raise SatbenchError(f"--size {size} is smaller than the model's patch size {loaded.card.patch_size}")
    try:
        check_input_size(loaded.model, size, size)
    except InputSizeError as exc:
        raise InputSizeError(f"--size {size}: {loaded.card.name} cannot take it: {exc}") from None
    res, res_policy = resolve_input_res(input_res, loaded, size)
    samples, split_sha, folder = list_images(Path(images))
    norm = resolve_normalization(normalization, loaded, folder)
    extractor = FeatureExtractor(loaded, normalization=norm, device=device, bf16=bf16)
    view = View(str(size), knn_transform(size), knn_transform_spec(size), res)
    stats = ExtractStats()
    feats = extract_views(extractor, samples, [view], split_sha256=split_sha or "", cache=None, batch_size=batch_size,
                          num_workers=num_workers, progress=progress, desc=f"extract {size}px", stats=stats,
                          dist=dist).get(view.key)
    if feats is None:  # a rank other than 0 of a sharded extraction
        return None, {}
    stats_ = array_stats(feats)
    judge(stats_, f"{loaded.card.name}, features of {images} at {size} px", allow_collapsed=allow_collapsed_features)
    check = section({view.key: {**stats_, "fingerprint": fingerprint(feats, split_sha256=split_sha or "",
                                                                     view=view.spec)}}, allow_collapsed_features)
    description = {
        "shape": list(feats.shape),
        "dtype": "float32",
        "feature": "normed CLS token",
        "images": [str(s.path.resolve()) for s in samples],
        "source": str(images),
        "source_sha256": split_sha,
        "transform": view.spec,
        "input_res": res,
        "input_res_policy": res_policy,
        **extractor.describe(),
        "world_size": dist.world_size if dist is not None else 1,
        "forward_images": stats.forward_images,
        "seconds": round(stats.seconds, 3),
        "features_check": check,
    }
    return feats.astype(np.float32, copy=False), description


def extract_to_file(loaded: LoadedModel, images: Path, size: int, output: Path, *, normalization: Optional[str] = None,
                    device: str = "auto", bf16: bool = False, batch_size: int = 64, progress: bool = True,
                    input_res: Optional[str] = None, dist: Any = None,
                    allow_collapsed_features: bool = False) -> Optional[dict[str, Any]]:
    """Write ``[n, D]`` float32 features to ``output`` (.npy) and a JSON sidecar ``output.json``; returns the sidecar
    (``input_res`` / ``input_res_policy`` recorded for Scale-MAE; ``features_check``: the features guard's section,
    nothing written when it fails)."""
    import io as _io

    if output.suffix != ".npy":
        raise SatbenchError(f"--output {output}: expected a .npy path")
    feats, description = extract_features(loaded, images, size, normalization=normalization, device=device,
                                          bf16=bf16, batch_size=batch_size, progress=progress, input_res=input_res,
                                          dist=dist, allow_collapsed_features=allow_collapsed_features)
    if feats is None:
        return None
    buf = _io.BytesIO()
    np.save(buf, feats, allow_pickle=False)
    atomic_write_bytes(output, buf.getvalue())
    sidecar = {"features": str(output), **description}
    atomic_write_json(output.with_suffix(".json"), sidecar)
    return sidecar
