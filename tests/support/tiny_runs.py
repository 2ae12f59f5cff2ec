"""Fast real runs for the statistics tests: a 2-block random ViT-Tiny in place of the loaded model (counting its
forward passes) and a 5-class copy of the bundled ucm-mini laid out as a ``uc_merced`` folder with its own splits."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

#: A linear / fine-tune protocol shrunk for CPU tests (protocol overrides).
PROBE = dict(train_crop=32, val_resize=36, val_crop=32, batch_size=8, epochs=1, lr=0.01)


def tiny_model(calls: dict[str, int] | None = None) -> Any:
    """A ``LoadedModel`` of a 2-block random ViT-Tiny/16 (seed 0); ``calls["images"]`` counts the images its
    ``forward_features`` sees (every extraction and training step goes through it)."""
    from support.builders import tiny_satdino

    model = tiny_satdino()
    if calls is not None:
        forward = model.model.forward_features

        def counting(x: Any, *a: Any, **k: Any) -> Any:
            calls["images"] = calls.get("images", 0) + int(x.shape[0])
            return forward(x, *a, **k)

        model.model.forward_features = counting
    return model


def small_scene_copy(root: Path, ucm_mini: Any, classes: int = 5, train: int = 8, val: int = 2) -> Path:
    """``classes`` classes of ucm-mini copied to ``root/uc_merced`` with ``train`` / ``val`` images per class."""
    root = root / "uc_merced"
    lines: dict[str, list[str]] = {"train": [], "val": []}
    for split, per in (("train", train), ("val", val)):
        seen: dict[int, int] = {}
        for s in ucm_mini.samples(split):
            if s.label < classes and seen.get(s.label, 0) < per:
                seen[s.label] = seen.get(s.label, 0) + 1
                dst = root / "images" / s.path.parent.name / s.path.name
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(s.path, dst)
                lines[split].append(f"./{s.path.parent.name}/{s.path.name}")
    for split, ls in lines.items():
        (root / f"{split}.txt").write_text("\n".join(ls) + "\n")
    return root


def knn_corruption_run(root: Path, dataset: Path, types: tuple[str, ...] = ("gaussian_noise", "jpeg"),
                       severities: tuple[int, ...] = (1, 5), **kw: Any) -> dict[str, Any]:
    """A real kNN run with ``--corruptions`` (one scale, k=5, 300 resamples) of the tiny random ViT on ``dataset``
    (e.g. :func:`small_scene_copy`), its record in ``root/res``; the caller patches ``satbench.api.load`` with
    :func:`tiny_model`. About 2 s on one CPU thread."""
    import satbench

    return satbench.run("knn", model="satdino-vit_small-16", weights="random", dataset=str(dataset),
                        results_dir=root / "res", device="cpu", num_workers=0, progress=False, resamples=300,
                        scales=[1.0], k=[5], corruptions=list(types), severities=list(severities),
                        cache_dir=str(root / "cache"), **kw)
