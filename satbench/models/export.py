"""Export a model's backbone weights for inference: safetensors (no pickle, nothing executable) or the official ``.pth``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from satbench.errors import SatbenchError
from satbench.io.atomic import atomic_torch_save, atomic_write_bytes, atomic_write_json
from satbench.models.weights import LoadedModel

FORMATS = ("safetensors", "pth")


def export_weights(loaded: LoadedModel, output: Path, fmt: str = "safetensors") -> dict[str, Any]:
    """Write ``loaded``'s backbone state dict (official key names) to ``output``.

    safetensors: the backbone tensors only (so the file loads strictly as ``--weights``) plus string metadata (model,
    source sha256, satbench version). pth: ``{'teacher': ..., 'linear_head': ...}`` as the official release, loadable by
    the official code and by satbench. A JSON sidecar ``<output>.json`` repeats the metadata.
    """
    from satbench._version import __version__

    if fmt not in FORMATS:
        raise SatbenchError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    sd = {k: v.detach().cpu().contiguous() for k, v in loaded.model.state_dict().items()}
    meta = {"model": loaded.card.name, "source_sha256": loaded.weights.sha256 or loaded.weights.tag,
            "source": loaded.weights.source, "satbench_version": __version__, "format": "satbench-backbone/1"}
    if fmt == "safetensors":
        from safetensors.torch import save

        if output.suffix != ".safetensors":
            raise SatbenchError(f"--output {output}: expected a .safetensors path")
        atomic_write_bytes(output, save(sd, metadata=meta))
    else:
        obj: dict[str, Any] = {"teacher": sd, "satbench": meta}
        if loaded.linear_head is not None:
            obj["linear_head"] = loaded.linear_head
        atomic_torch_save(obj, output)
    atomic_write_json(output.with_name(output.name + ".json"), {**meta, "tensors": len(sd)})
    return {**meta, "tensors": len(sd), "path": str(output)}
