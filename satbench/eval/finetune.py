"""Full fine-tuning: :func:`satbench.eval.linear.train_classifier` with ``mode: full`` (spec 4.2).

The SatDINO repository has no fine-tuning code for the six scene datasets; satbench reads the README table as
``eval_linear.py --finetune_mode full`` on the official train/val splits (the most plausible reading, spec 4.2 [INF]).
Every hyperparameter is in ``tasks/finetune/satdino-finetune-v1.yaml`` and recorded with the result.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import ProtocolError
from ..features import FeatureExtractor
from ..protocols import Protocol
from .linear import LinearSettings, TrainResult, train_classifier


def train_finetune(extractor: FeatureExtractor, train_items: Sequence[Any], val_items: Sequence[Any],
                   num_classes: int, protocol: Protocol, **kwargs: Any) -> TrainResult:
    """Fine-tune the whole backbone with a linear head; the protocol must say ``mode: full``."""
    if LinearSettings.from_protocol(protocol).mode != "full":
        raise ProtocolError(f"protocol {protocol.name} is not a fine-tuning protocol (mode must be 'full')")
    return train_classifier(extractor, train_items, val_items, num_classes, protocol, **kwargs)
