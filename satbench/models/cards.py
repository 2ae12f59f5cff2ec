"""Model cards: the :class:`ModelCard` type and the checks of one card file. A leaf module (no satbench imports but
errors, settings, the normalisation presets and the YAML reader), so backbones, weights and the registry can all use it.

A card is strict: every key has a declared type, unknown keys are an error naming the card and the key, and keys put
in the wrong place are named with where they belong (e.g. ``pool`` at the top level belongs under ``options:``).
What a family accepts under ``options:`` and how its dimensions must agree is checked by the family itself
(:meth:`satbench.models.backbones.base.Family.check_card`), when the registry loads the card.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from satbench.errors import SatbenchError
from satbench.data.normalization import Normalization, get_normalization
from satbench.config.settings import between, ge, gt, load_settings, nonempty

#: Keys that belong under ``options:`` (build options of some family), not at the top level of a card.
OPTION_KEYS = ("pool", "pos_interp", "attn_impl", "pos_embed", "gsd_register", "drop_path_rate", "global_pool")


class CardError(SatbenchError):
    """A model card file that is malformed."""


@dataclass(frozen=True)
class KnownAnswer:
    """Feature statistics of one bundled image under a card's weights (``satbench verify``)."""

    image: str
    size: int = field(metadata=gt(0))
    cls_mean: float
    cls_std: float
    cls_first: tuple[float, ...] = field(metadata=nonempty())
    atol: float = field(metadata=gt(0))
    normalization: Optional[str] = None

    def check(self, where: str) -> None:
        parts = self.image.replace("\\", "/").split("/")
        if not self.image or self.image.startswith("/") or ".." in parts:
            raise CardError(f"{where}: image must be a path under satbench's bundled data (e.g. "
                            f"ucm-mini/images/airplane/airplane16.jpg), got {self.image!r}")
        if len(self.cls_first) > 64:
            raise CardError(f"{where}: cls_first must hold 1 to 64 numbers, got {len(self.cls_first)}")


@dataclass(frozen=True)
class WeightEntry:
    """One declared weight file of a card (``weights: {pretrain: ..., finetune: ...}``): where it is (``hf_repo`` or
    ``url`` + ``filename``), its pins (``revision``: the hub commit; ``sha256``: a different file is refused unless
    ``--allow-unpinned``), the ``key_prefix`` every backbone key carries in the file (applied only when named here) and
    a ``known_answer`` for ``satbench verify``."""

    filename: str
    hf_repo: str = ""
    url: str = ""
    revision: Optional[str] = None
    sha256: str = ""
    key_prefix: Optional[str] = None
    known_answer: Optional[KnownAnswer] = None

    def check(self, where: str) -> None:
        if self.key_prefix is not None and not self.key_prefix:
            raise CardError(f"{where}: key_prefix must be a non-empty string such as 'model.', got ''")
        if not self.filename or "/" in self.filename or self.filename in (".", ".."):
            raise CardError(f"{where}: weights filename must be a plain file name, got {self.filename!r}")
        if self.sha256 and (len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256)):
            raise CardError(f"{where}: weights sha256 must be 64 lower-case hex digits or empty, got {self.sha256!r}")


@dataclass(frozen=True)
class PaperFacts:
    """What the model's paper reports about it (``paper:`` in a card), as the paper counts it: ``params_m``
    (millions of parameters), ``gflops`` (at 224 px), and its fMoW top-1 (%) under linear probing or fine-tuning.
    Reference facts next to satbench's own measurements, never a run's result."""

    params_m: Optional[float] = field(default=None, metadata=gt(0))
    gflops: Optional[float] = field(default=None, metadata=gt(0))
    fmow_linear_top1: Optional[float] = field(default=None, metadata=between(0, 100))
    fmow_finetune_top1: Optional[float] = field(default=None, metadata=between(0, 100))


@dataclass(frozen=True)
class _CardFields:
    """The schema of a card file (see :class:`ModelCard` for the meaning of each key)."""

    name: str
    family: str
    patch_size: int = field(metadata=gt(0))
    embed_dim: int = field(metadata=gt(0))
    depth: int = field(metadata=gt(0))
    feature_dim: int = field(metadata=gt(0))
    normalization: str
    arch: str = ""
    num_heads: int = field(default=0, metadata=ge(0))
    img_size: int = field(default=224, metadata=gt(0))
    description: str = ""
    feature: str = "cls"
    params_expected: Optional[int] = None
    params_exclude: tuple[str, ...] = ()
    weights: dict[str, WeightEntry] = field(default_factory=dict)
    paper: Optional[PaperFacts] = None
    options: dict[str, Any] = field(default_factory=dict)
    license: str = ""
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelCard:
    """A registered model: architecture, weight sources, normalisation and expected size.

    ``weights`` maps a kind (``pretrain``, ``finetune``) to its entry as a plain dict (``filename``, ``hf_repo`` or
    ``url``, ``revision``, ``sha256``, ``key_prefix``, ``known_answer``); ``paper`` the paper's own figures as a plain
    dict of the keys the card gives (:class:`PaperFacts`). ``options`` are the family's build options
    (e.g. ``pool: cls`` for the MAE families). ``path`` is the card file (empty for cards made at run time).
    """

    name: str
    family: str
    patch_size: int
    embed_dim: int
    depth: int
    feature_dim: int
    normalization: str
    arch: str = ""
    num_heads: int = 0
    img_size: int = 224
    description: str = ""
    feature: str = "cls"
    params_expected: int | None = None
    params_exclude: tuple[str, ...] = ()
    weights: dict[str, dict[str, Any]] = field(default_factory=dict)
    paper: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    license: str = ""
    aliases: tuple[str, ...] = ()
    path: str = ""

    @property
    def norm(self) -> Normalization:
        """The card's normalisation preset."""
        return get_normalization(self.normalization)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("path", None)
        return d


def card_from_mapping(data: Any, where: str, *, path: str = "") -> ModelCard:
    """Check a card mapping (types, ranges, unknown and misplaced keys, the normalisation preset) -> :class:`ModelCard`."""
    if not isinstance(data, dict):
        raise CardError(f"{where} must be a mapping of card keys, got {type(data).__name__}")
    misplaced = [k for k in data if k in OPTION_KEYS]
    if misplaced:
        raise CardError(f"{where}: key {misplaced[0]} belongs under options: (a build option of the family), "
                        f"not at the top level")
    fields = load_settings(_CardFields, data, where, error=CardError)
    try:
        get_normalization(fields.normalization)
    except SatbenchError as exc:
        raise CardError(f"{where}: normalization: {exc}") from None
    weights = {}
    for kind, entry in fields.weights.items():  # each entry was checked (WeightEntry.check) while loading
        weights[kind] = dict(data["weights"][kind])  # validated above; only the keys the card gives
    values = {k: getattr(fields, k) for k in _CardFields.__dataclass_fields__}
    values["weights"] = weights
    values["paper"] = dict(data["paper"]) if fields.paper is not None else {}  # checked (PaperFacts); keys as given
    return ModelCard(path=path, **values)


def read_card_file(path: Path) -> ModelCard:
    """Read and check one card file; its file name must be ``<name>.yaml``."""
    from satbench.config.yamlio import read_yaml

    where = f"model card {path}"
    data = read_yaml(path, what="model card", error=CardError)
    card = card_from_mapping(data, where, path=str(path))
    if path.stem != card.name:
        raise CardError(f"{where} declares name {card.name!r}; the file must be named {card.name}.yaml")
    return card
