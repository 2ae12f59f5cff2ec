"""Known-answer test of a weight file: the features of one fixed bundled image must match the card.

A card's weight entry may carry ``known_answer``: the mean, the (population) standard deviation and the first
values of the CLS feature of a bundled image, made with the official weights. :func:`verify_weights` loads the
weights (strictly, with the card's pins) and recomputes them through the normal
:class:`~satbench.models.features.FeatureExtractor`, so a wrong or corrupt file that still loads (the other variant, a
fine-tuned file, a damaged tensor) is caught even where no sha256 is pinned.

The image is read as 8-bit RGB, resized to ``size`` x ``size`` (PIL bicubic) and scaled to [0, 1]; the
extractor then applies the card's normalisation (or the entry's ``normalization`` preset). Entries are made
with :func:`known_answer_entry` (CLI ``satbench verify MODEL --weights W --write``) by whoever has the weights;
shipped cards are never edited in place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from satbench.errors import SatbenchError, WeightsError
from satbench.models.registry import ModelCard
from satbench.runtime.resources import bundled_data_dir, models_dir

DEFAULT_IMAGE = "ucm-mini/images/airplane/airplane16.jpg"
DEFAULT_SIZE = 224
DEFAULT_FIRST = 8
#: fp32 on CPU reproduces these statistics to ~1e-6 across machines; 1e-4 leaves room and still catches a damaged tensor.
DEFAULT_ATOL = 1e-4


def known_answer_input(image: str, size: int) -> torch.Tensor:
    """The ``[1, 3, size, size]`` float image in [0, 1] the known answer is computed on."""
    from PIL import Image

    from satbench.data.images import read_rgb

    root = bundled_data_dir().resolve()
    path = (root / image).resolve()
    if root not in path.parents:
        raise SatbenchError(f"known_answer image {image!r} is not under satbench's bundled data ({root})")
    img = read_rgb(path).resize((size, size), Image.BICUBIC)
    arr = np.asarray(img, dtype=np.uint8).copy()
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def compute_stats(loaded: Any, image: str = DEFAULT_IMAGE, size: int = DEFAULT_SIZE, *, normalization: Optional[str] = None,
                  n_first: int = DEFAULT_FIRST, device: str = "cpu") -> dict[str, Any]:
    """``cls_mean``, ``cls_std`` (population) and the first ``n_first`` CLS values for the bundled ``image``."""
    from satbench.models.features import FeatureExtractor
    from satbench.data.normalization import get_normalization

    norm = get_normalization(normalization) if normalization else None
    ex = FeatureExtractor(loaded, normalization=norm, device=device)
    with _no_tf32():
        cls = ex(known_answer_input(image, size)).cls[0].double().cpu()
    return {"cls_mean": float(cls.mean()), "cls_std": float(cls.std(correction=0)),
            "cls_first": [float(v) for v in cls[:n_first]]}


class _no_tf32:
    """Full fp32 matmuls on CUDA while the known answer is computed (TF32 would differ by ~1e-3)."""

    def __enter__(self) -> None:
        self._old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    def __exit__(self, *exc: Any) -> None:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self._old


def known_answer_entry(loaded: Any, image: str = DEFAULT_IMAGE, size: int = DEFAULT_SIZE, *, n_first: int = DEFAULT_FIRST,
                       atol: float = DEFAULT_ATOL, normalization: Optional[str] = None, device: str = "cpu") -> dict[str, Any]:
    """A ``known_answer`` card entry for the weights in ``loaded`` (values rounded to 7 decimals)."""
    st = compute_stats(loaded, image, size, normalization=normalization, n_first=n_first, device=device)
    entry: dict[str, Any] = {"image": image, "size": size}
    if normalization:
        entry["normalization"] = normalization
    entry.update(cls_mean=round(st["cls_mean"], 7), cls_std=round(st["cls_std"], 7),
                 cls_first=[round(v, 7) for v in st["cls_first"]], atol=atol)
    return entry


def compare(expected: dict[str, Any], got: dict[str, Any]) -> list[tuple[str, float, float, float, bool]]:
    """Rows ``(name, expected, got, |diff|, ok)`` for mean, std and each of the first values."""
    atol = float(expected["atol"])
    rows = [(k, float(expected[k]), float(got[k]), abs(float(expected[k]) - float(got[k]))) for k in ("cls_mean", "cls_std")]
    first = expected["cls_first"]
    if len(got["cls_first"]) < len(first):
        raise WeightsError(f"known answer lists {len(first)} CLS values but the model gives {len(got['cls_first'])}")
    rows += [(f"cls[{i}]", float(e), float(g), abs(float(e) - float(g))) for i, (e, g) in enumerate(zip(first, got["cls_first"]))]
    return [(n, e, g, d, d <= atol) for n, e, g, d in rows]


def verify_weights(card: ModelCard, weights: Optional[str] = None, *, kind: str = "pretrain", device: str = "cpu",
                   allow_unpinned: bool = False, trust_checkpoint: bool = False) -> dict[str, Any]:
    """Load ``card``'s ``kind`` weights (``weights`` as ``--weights``) and check them against the card's known answer.

    Returns a report (``ok``, ``rows``, ``weights``); a mismatch raises :class:`WeightsError` naming the worst value.
    """
    from satbench.models.weights import load_model

    entry = card.weights.get(kind, {})
    ka = entry.get("known_answer")
    if not ka:
        raise WeightsError(f"model {card.name} has no known answer for its {kind} weights (weights.{kind}.known_answer); "
                           f"whoever has the official file can make one: satbench verify {card.name} --weights FILE --write")
    loaded = load_model(card, weights, kind=kind, allow_unpinned=allow_unpinned, trust_checkpoint=trust_checkpoint)
    got = compute_stats(loaded, ka["image"], int(ka["size"]), normalization=ka.get("normalization"),
                        n_first=len(ka["cls_first"]), device=device)
    rows = compare(ka, got)
    report = {"model": card.name, "kind": kind, "weights": loaded.weights.as_dict(), "atol": ka["atol"],
              "rows": rows, "ok": all(r[4] for r in rows)}
    if not report["ok"]:
        worst = max(rows, key=lambda r: r[3])
        bad = sum(1 for r in rows if not r[4])
        raise WeightsError(f"{loaded.weights.path}: known-answer check failed for {card.name} ({kind}): {bad} of {len(rows)} "
                           f"values differ by more than {ka['atol']} (worst {worst[0]}: expected {worst[1]:.7g}, got "
                           f"{worst[2]:.7g}); the file loads but is not the weights the card describes")
    return report


def check_out_path(card: ModelCard, out: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """``out`` as a place for a card copy: not the card itself, not in the shipped ``models/``, not existing (unless ``overwrite``)."""
    out = Path(out).expanduser()
    if not card.path:
        raise SatbenchError(f"model {card.name} has no card file to copy (dynamic card); paste the printed entry instead")
    target = out.resolve()
    if target == Path(card.path).resolve() or models_dir().resolve() in target.parents:
        raise SatbenchError(f"--out {out}: refusing to write into the shipped model cards; write the copy elsewhere and "
                            f"review the change")
    if out.exists() and not overwrite:
        raise SatbenchError(f"--out {out} already exists; pass --force to replace it")
    return out


def write_card_copy(card: ModelCard, kind: str, entry: dict[str, Any], out: str | os.PathLike, *,
                    sha256: Optional[str] = None, revision: Optional[str] = None, overwrite: bool = False) -> Path:
    """Write a copy of ``card``'s YAML with ``weights.<kind>.known_answer`` (and an unknown sha256/revision) filled in.

    Never the shipped card itself (nor any file in the shipped ``models/`` folder): ``out`` must be another path.
    YAML comments of the original are not kept in the copy.
    """
    import yaml

    from satbench.io.atomic import atomic_write_bytes

    out = check_out_path(card, out, overwrite=overwrite)
    from satbench.config.yamlio import read_yaml

    data = read_yaml(card.path, what="model card")
    w = data.setdefault("weights", {}) or {}
    data["weights"] = w
    e = w.setdefault(kind, {})
    e["known_answer"] = entry
    if sha256 and not e.get("sha256"):
        e["sha256"] = sha256
    if revision and not e.get("revision"):
        e["revision"] = revision
    text = f"# Copy of {Path(card.path).name} with weights.{kind}.known_answer made by `satbench verify --write`.\n"
    text += yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120)
    atomic_write_bytes(out, text.encode())
    return out
