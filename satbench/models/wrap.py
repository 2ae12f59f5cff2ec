"""``satbench.wrap``: your own ``nn.Module`` as a loaded model that ``satbench.run`` takes.

The backbone side (declared token layout, pooling, input checks) is :mod:`satbench.models.backbones.module`; this
module adds the weights identity (class path and state-dict sha256) and returns a
:class:`~satbench.models.weights.LoadedModel`.
"""

from __future__ import annotations

from typing import Any, Optional

from torch import nn

from satbench.models.backbones.module import (
    PREFIX, class_path, module_card, normalization_name, state_dict_sha256, wrapped_backbone
)
from satbench.models.weights import LoadedModel, WeightsInfo


def wrap(module: nn.Module, *, patch_size: int, normalization: Any, tokens: str = "cls+patches",
         pool: Optional[str] = None, name: Optional[str] = None, img_size: int = 224) -> Any:
    """``module`` as a :class:`~satbench.models.weights.LoadedModel` for ``satbench.run`` (see the module doc).

    ``normalization``: what the module expects after images are scaled to [0, 1]: a preset (``"imagenet"``), a
    :class:`Normalization` or ``(mean, std)``. ``name``: the record's model name (default ``module:<ClassName>``).
    """
    where = f"satbench.wrap({type(module).__name__})"
    w = wrapped_backbone(module, patch_size, tokens, pool, where)
    name = name or f"{PREFIX}{type(module).__name__}"
    card = module_card(name, w, normalization_name(normalization, name), img_size)
    digest = state_dict_sha256(module)
    info = WeightsInfo(source="module", sha256=digest, kind="pretrain", extras={"module_class": class_path(module)},
                       tensors_sha256=digest)
    return LoadedModel(w.eval(), card, info)
