"""Hand pretrained teachers to the evaluation side: a model card for them, and the kNN monitor."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from satbench.models.cards import ModelCard
from satbench.models.registry import get_card
from satbench.errors import UnknownNameError


def preset_name(name: str) -> str:
    """A normalisation name a card can carry: a model preset, or a catalog dataset's table registered as a preset."""
    from satbench.data.catalog import resolve_normalization
    from satbench.data.normalization import PRESETS, register_normalization

    if name not in PRESETS:
        register_normalization(resolve_normalization(name))
    return name


def card_for_config(cfg: dict[str, Any], normalization: Optional[str] = None) -> ModelCard:
    """The registered card of ``cfg``'s architecture (``satdino-<arch>-<patch>``) or, for reduced-depth
    demo models and plain DINO, a card made on the fly (its ``depth``; ``options: {gsd_register: false}``)."""
    from satbench.models.backbones.satdino import ARCHS

    dims = dict(ARCHS[cfg["arch"]])
    depth = cfg.get("depth") or dims["depth"]
    norm = preset_name(normalization or cfg["normalization"])
    plain_dino = cfg.get("model_type", "satdino") == "dino"
    if depth == dims["depth"] and not plain_dino:
        try:
            card = get_card(f"satdino-{cfg['arch']}-{cfg['patch_size']}")
            if card.normalization == norm:
                return card
        except UnknownNameError:
            pass
    # an architecture name: the weights (teacher sha256 or random seed) tell the demo rows apart
    prefix = "dino" if plain_dino else "satdino"
    name = f"{prefix}-{cfg['arch']}-{cfg['patch_size']}" + (f"-d{depth}" if depth != dims["depth"] else "")
    options: dict[str, Any] = {}
    if plain_dino:
        options["gsd_register"] = False
    return ModelCard(name=name, family="satdino", patch_size=cfg["patch_size"], embed_dim=dims["embed_dim"],
                     depth=depth, feature_dim=dims["embed_dim"], normalization=norm, arch=cfg["arch"],
                     num_heads=dims["num_heads"], description="trained with satbench pretrain"
                     + (" (plain DINO ViT, no GSD register)" if plain_dino else ""), options=options)


def knn_eval(weights: str | Path, cfg: dict[str, Any], *, dataset: str = "ucm-mini", k: int = 20,
             scales: Optional[list[float]] = None, seed: int = 0, progress: bool = False,
             allow_collapsed_features: bool = False) -> dict[str, Any]:
    """Multi-scale kNN record (``satdino-knn-v1``, ``k`` only) of a teacher file, or of random init
    (``weights='random'``) of the same architecture. The features guard of every kNN run applies
    (:mod:`satbench.eval.feature_guard`: a collapsed teacher fails in one line unless ``allow_collapsed_features``)."""
    from satbench.data.scene import open_scene_dataset
    from satbench.eval.task_knn import run_knn
    from satbench.config.protocols import load_protocol
    from satbench.models.weights import load_model

    card = card_for_config(cfg)
    loaded = load_model(card, str(weights), seed=seed)
    proto = load_protocol("satdino-knn-v1", task="knn").with_overrides(k=[k], k_report=k)
    if scales is not None:
        proto = proto.with_overrides(scales=list(scales))
    return run_knn(loaded, open_scene_dataset(dataset), proto, device="cpu", progress=progress, num_workers=0,
                   allow_collapsed_features=allow_collapsed_features)


def make_knn_monitor(dataset: str = "ucm-mini", k: int = 20, scales: Optional[list[float]] = None):
    """A ``Trainer`` monitor: kNN top-1 of the current teacher (exported ``teacher.pth``) every ``knn_freq`` epochs.

    The teacher is written first (the monitor runs before the epoch's checkpoint, on rank 0 only).
    """
    import torch

    from satbench.pretrain.checkpoint import export_teacher

    def monitor(trainer: Any, epoch_done: int) -> dict[str, Any]:
        if not trainer.ctx.is_main:
            return {}
        rng = torch.get_rng_state()
        path = export_teacher(trainer.teacher.state_dict(), trainer.output_dir, trainer.meta(epoch_done))
        rec = knn_eval(path, trainer.cfg, dataset=dataset, k=k, scales=scales or [0.5])
        torch.set_rng_state(rng)
        return {"knn_top1": rec["summary"]["top1_avg"]}

    return monitor
