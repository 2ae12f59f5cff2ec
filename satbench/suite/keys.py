"""What makes two suite runs "the same run": the weights' identity and the run key (task, model, weights, protocol
hash after overrides, dataset split hashes and normalisation, bf16, model build options, seed); :func:`record_mismatch`
says what differs between a record and a key."""


from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional



@dataclass(frozen=True)
class WeightsId:
    """The identity of a model's weights as records carry it: the tensors' sha256 (``weights.tensors_sha256``, the
    same for the same weights in any file format) beside the file's sha256, or random init with its seed."""

    sha256: Optional[str] = None
    seed: Optional[int] = None
    #: known once the weights are loaded (:attr:`~satbench.models.weights.WeightsInfo.tensors_sha256`)
    tensors_sha256: Optional[str] = None

    @property
    def random(self) -> bool:
        return self.sha256 is None and self.tensors_sha256 is None

    @classmethod
    def of(cls, info: Any) -> "WeightsId":
        """From a :class:`~satbench.models.weights.WeightsInfo` (``loaded.weights``)."""
        if info.source == "random":
            return cls(seed=info.seed)
        return cls(sha256=info.sha256, tensors_sha256=getattr(info, "tensors_sha256", None))

    def label(self) -> str:
        if self.random:
            return f"random weights (seed {self.seed})"
        return f"weights {(self.tensors_sha256 or self.sha256 or '')[:12]}"

    def mismatch(self, w: dict[str, Any]) -> Optional[str]:
        """Why a record's ``weights`` mapping is not these weights, or None. Tensors sha256 on both sides: compared;
        otherwise (an older record, or weights not loaded yet) the file sha256."""
        got = w.get("tensors_sha256") or w.get("sha256") or w.get("source")
        if w.get("source") == "random":
            return f"weights {got!r}, not {self.label()}"
        theirs = w.get("tensors_sha256")
        if self.tensors_sha256 and isinstance(theirs, str) and theirs:
            return None if theirs == self.tensors_sha256 else f"weights {got!r}, not {self.label()}"
        return None if w.get("sha256") == self.sha256 else f"weights {got!r}, not {self.label()}"


@dataclass(frozen=True)
class RunKey:
    """Everything that must agree for a record to stand for the run the suite would do."""

    task: str
    model: str
    weights: WeightsId
    protocol_hash: str
    dataset: str
    split_hashes: dict[str, str]
    normalization: Optional[dict[str, Any]] = None
    bf16: bool = False
    #: the build options the run uses (family defaults, then the card's, then the user's)
    model_options: dict[str, Any] = field(default_factory=dict)
    #: the values a record that does not report an option ran with (family defaults, then the card's)
    option_defaults: dict[str, Any] = field(default_factory=dict)
    seed: int = 0


def _canon(value: Any) -> Any:
    """``value`` as it reads back from a record's JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def _get(rec: Any, *keys: str) -> Any:
    node = rec
    for k in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(k)
    return node


def record_mismatch(rec: Any, key: RunKey) -> Optional[str]:
    """Why record ``rec`` is not a comparable run of ``key`` (the first difference), or None when it is.

    Compared: task, model, weights (the tensors' sha256 where the record and the key both know it, else the file's
    sha256; random init: the seed), the protocol hash (the effective content after
    overrides), the dataset name and its split hashes (train and val), the dataset normalisation, bf16, every build
    option of the model's family (an option a record does not report ran with its default) and, for tasks that record
    one (``extra.seed``: the linear probes' hold-out and initialisation), the seed. Records are untrusted: a field of
    an unexpected type is a mismatch, never an error.
    """
    if _get(rec, "task") != key.task:
        return f"task {_get(rec, 'task')!r}, not {key.task!r}"
    if _get(rec, "model") != key.model:
        return f"model {_get(rec, 'model')!r}, not {key.model!r}"
    w = _get(rec, "weights")
    if not isinstance(w, dict):
        return "no weights"
    if key.weights.random:
        if w.get("source") != "random" or w.get("seed") != key.weights.seed or isinstance(w.get("seed"), bool):
            return f"weights {w.get('sha256') or w.get('source')!r} (seed {w.get('seed')!r}), not {key.weights.label()}"
    elif key.weights.mismatch(w):
        return key.weights.mismatch(w)
    if _get(rec, "protocol", "hash") != key.protocol_hash:
        return f"protocol hash {str(_get(rec, 'protocol', 'hash'))[:12]}, not {key.protocol_hash[:12]}"
    if _get(rec, "dataset", "name") != key.dataset:
        return f"dataset {_get(rec, 'dataset', 'name')!r}, not {key.dataset!r}"
    hashes = _get(rec, "dataset", "split_hashes")
    if not isinstance(hashes, dict) or any(hashes.get(s) != h for s, h in key.split_hashes.items()):
        return "different split files"
    if _get(rec, "dataset", "normalization") != _canon(key.normalization):
        return "different dataset normalisation"
    bf16 = _get(rec, "extractor", "bf16")
    if (False if bf16 is None else bf16) is not key.bf16:  # absent: an fp32 run; a non-boolean never matches
        return f"bf16 {bf16!r}, not {key.bf16}"
    opts = _get(rec, "extractor", "model_options")
    opts = opts if isinstance(opts, dict) else {}
    for name, want in _canon(key.model_options).items():
        got = opts.get(name, _canon(key.option_defaults).get(name))
        if got != want:
            return f"model option {name} {got!r}, not {want!r}"
    seed = _get(rec, "extra", "seed")
    if seed is not None and seed != key.seed:
        return f"seed {seed!r}, not {key.seed}"
    return None


def comparable(rec: Any, key: RunKey) -> bool:
    """Whether ``rec`` is a comparable run of ``key`` (see :func:`record_mismatch`)."""
    return record_mismatch(rec, key) is None


def model_option_expectation(card: Any, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(options the run uses, options a record that does not report one ran with)`` for ``card`` built with the
    user's ``options``: the family's declared defaults, then the card's ``options:``, then the user's."""
    from satbench.models.backbones import FAMILIES

    family = FAMILIES.get(card.family)
    defaults = {k: spec.default for k, spec in (family.options.items() if family is not None else ())}
    defaults.update(card.options or {})
    # a None default is "what the model gives": ``pool`` is then the card's own default (``card.feature``: timm,
    # hf-transformers and wrapped modules choose it per model); the other None-default options are facts the model
    # records (timm_model, tokens, hf_class...), not choices, and are not compared
    if defaults.get("pool", "") is None:
        defaults["pool"] = card.feature
    defaults = {k: v for k, v in defaults.items() if v is not None}
    return {**defaults, **{k: v for k, v in options.items() if v is not None}}, defaults


# ---------------------------------------------------------------------------------------------------------------------
# Configuration and plan
# ---------------------------------------------------------------------------------------------------------------------
