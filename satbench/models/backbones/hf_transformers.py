"""Vision models that ship with Hugging Face transformers: ``--model hf-transformers:<owner>/<repo>[@<revision>]`` or
``--model hf-transformers:<snapshot folder>`` (the optional ``transformers`` extra).

Only classes shipped with transformers are built (:data:`CLASSES`, chosen by ``model_type`` in ``config.json``):
``Dinov2Model``, ``Dinov2WithRegistersModel``, ``DINOv3ViTModel``, ``ViTModel`` and the vision towers of CLIP
(``CLIPVisionModel``) and SigLIP (``SiglipVisionModel``; a two-tower ``clip`` / ``siglip`` repository gives its
``vision_config``). A repository whose config needs ``trust_remote_code`` (an ``auto_map`` entry, or a
``model_type`` transformers does not know) is refused in one line unless the build option ``trust_remote_code``
(CLI ``--trust-remote-code``) is given; it is then recorded in ``model_options``.

* Token groups are declared per class (:class:`HFClass`), from the config (``num_register_tokens``) and checked
  against the built model's own parameters and the first forward's token count, never guessed.
* Final norm: each class's own final layer norm. ``last_hidden_state`` is already normed for Dinov2, Dinov2-reg,
  DINOv3, ViT and SigLIP; CLIP's ``last_hidden_state`` is not, and its ``post_layernorm`` (which gives CLIP's own
  ``pooler_output`` on the CLS token) is applied to every token. ViT's tanh ``pooler`` is not built
  (``add_pooling_layer=False``): the feature is the final-normed CLS.
* Pool (``pool``, recorded): ``cls`` by default where there is a CLS token (DINOv2 and DINOv3 upstream, CLIP's
  ``pooler_output`` before ``visual_projection``); SigLIP has no CLS token and pools by its attention-pooling head
  (``pool: head``, its ``pooler_output``, the image embedding it was trained with), or ``avg``.
* Positional embeddings at non-native sizes: Dinov2 / Dinov2-reg interpolate by themselves (bicubic, size-based;
  Dinov2Model without antialias, Dinov2WithRegistersModel with it, as timm does); ViT, CLIP and SigLIP get
  ``interpolate_pos_encoding=True`` (bicubic, size-based, no antialias; identity at the native grid); DINOv3 uses
  RoPE (any grid). Each class's own behaviour is recorded (``model_options.positions``). Inputs must be whole patches (``--size-rule floor|crop`` for kNN, as for timm).
* Normalisation: ``image_mean`` / ``image_std`` of the snapshot's ``preprocessor_config.json`` (after its 1/255
  rescale); no file, or one that does not rescale by 1/255, is one line (satbench does not guess). Its resize and
  crop settings are not used: the protocol decides sizes.
* Weights: by default the snapshot's ``model.safetensors`` (a hub repository: ``hf:<repo>@<commit>/model.safetensors``
  at the commit its ``config.json`` came from; a folder: the file in it); a repository that ships it sharded
  (``model.safetensors.index.json`` + ``model-0000x-of-0000y.safetensors``, as large DINOv3 / ViT-L repositories
  do) is read through its checked index (:mod:`satbench.models.sharded`); ``--weights`` takes any other file.
  Keys are converted by transformers' own loader (its key renames of older checkpoints), strictly: a missing or
  mis-shaped key is an error; unexpected keys are dropped only by the class's declared list (the text tower of
  CLIP/SigLIP, ViT's pooler, a classifier head), counted in ``weights.extras``. The weights identity is
  ``weights.tensors_sha256`` of the loaded tensors.
* Offline (``SATBENCH_OFFLINE`` / ``HF_HUB_OFFLINE``) with no snapshot in the Hugging Face cache: one line naming where
  to place it, no retries.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import torch
from torch import Tensor, nn

from satbench.data.normalization import PRESETS, Normalization, register_normalization
from satbench.errors import SatbenchError, UnknownNameError, WeightsError
from satbench.models.backbones.base import (
    MAX_GRID_SIDE, BackboneOutput, Family, OptionSpec, check_input_grid, check_whole_patches, register_family
)
from satbench.models.backbones.satdino import _check_layers
from satbench.models.backbones.tokens import POOLS, TokenLayout, pool_dim, pool_tokens

PREFIX = "hf-transformers:"
EXTRA = "transformers"
HEAD = "head"
#: Pools of this family: :data:`~satbench.models.backbones.tokens.POOLS` and SigLIP's attention-pooling ``head``.
HF_POOLS: tuple[str, ...] = POOLS + (HEAD,)
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
_JSON_LIMIT = 4 << 20
_REPO_RE = re.compile(r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*)"
                      r"(?:@(?P<rev>[A-Za-z0-9][A-Za-z0-9_.-]*))?$")
FORMAT = "hf-transformers:OWNER/REPO[@REVISION] or hf-transformers:/path/to/snapshot-folder"


@dataclass(frozen=True)
class HFClass:
    """How satbench runs one transformers class: its token layout, final norm, positional encoding and pool."""

    name: str  # the transformers class
    config_class: str
    cls_token: bool
    registers_key: Optional[str] = None  # config key holding the number of register tokens
    final_norm: Optional[str] = None  # module applied to last_hidden_state (None: already final-normed)
    interpolate_kwarg: bool = False  # forward needs interpolate_pos_encoding=True at non-native sizes
    positions: str = ""
    default_pool: str = "cls"
    why: str = ""
    dropped: tuple[str, ...] = ()  # checkpoint keys (prefixes) that are not the backbone, dropped by this list
    build_kwargs: tuple[tuple[str, Any], ...] = ()
    head: bool = False  # has an attention-pooling head (SigLIP, when vision_use_head)


_DINO_DROP = ("classifier.",)
DINOV2 = HFClass("Dinov2Model", "Dinov2Config", True, final_norm=None,
                 positions="absolute, interpolated by the model off its native grid (bicubic, size-based, no antialias)",
                 why="DINOv2 upstream's feature: the final-normed CLS token (transformers' pooler_output)",
                 dropped=_DINO_DROP)
DINOV2_REG = HFClass("Dinov2WithRegistersModel", "Dinov2WithRegistersConfig", True, "num_register_tokens",
                     positions="absolute, interpolated by the model off its native grid (bicubic, size-based, "
                               "antialias: unlike Dinov2Model, like timm)", why=DINOV2.why, dropped=_DINO_DROP)
DINOV3 = HFClass("DINOv3ViTModel", "DINOv3ViTConfig", True, "num_register_tokens", positions="RoPE (any grid)",
                 why="upstream DINOv3 uses its final-normed CLS token (transformers' pooler_output)",
                 dropped=_DINO_DROP)
VIT = HFClass("ViTModel", "ViTConfig", True, interpolate_kwarg=True,
              positions="absolute, interpolate_pos_encoding=True (bicubic, size-based, no antialias; identity at the "
                        "native grid)",
              why="the final-normed CLS token; ViT's tanh pooler is not built (add_pooling_layer=False)",
              dropped=("pooler.", "classifier."), build_kwargs=(("add_pooling_layer", False),))
CLIP = HFClass("CLIPVisionModel", "CLIPVisionConfig", True, final_norm="post_layernorm", interpolate_kwarg=True,
               positions=VIT.positions,
               why="CLIP's pooler_output: post_layernorm of the CLS token (before visual_projection)",
               dropped=("text_model.", "text_projection.", "visual_projection.", "logit_scale"))
SIGLIP = HFClass("SiglipVisionModel", "SiglipVisionConfig", False, interpolate_kwarg=True, positions=VIT.positions,
                 default_pool=HEAD, head=True,
                 why="SigLIP has no CLS token; its image embedding is the attention-pooling head's output "
                     "(pooler_output); pool avg takes the mean of the final-normed patch tokens instead",
                 dropped=("text_model.", "logit_scale", "logit_bias"))

#: ``model_type`` of ``config.json`` -> (class, the sub-config key of a two-tower repository or None).
CLASSES: dict[str, tuple[HFClass, Optional[str]]] = {
    "dinov2": (DINOV2, None), "dinov2_with_registers": (DINOV2_REG, None), "dinov3_vit": (DINOV3, None),
    "vit": (VIT, None), "clip_vision_model": (CLIP, None), "clip": (CLIP, "vision_config"),
    "siglip_vision_model": (SIGLIP, None), "siglip": (SIGLIP, "vision_config"),
}
SUPPORTED = ", ".join(sorted({c.name for c, _ in CLASSES.values()}))


def _transformers(what: str) -> Any:
    """The ``transformers`` module, or one line naming the extra to install."""
    try:
        import transformers
    except ImportError:
        raise SatbenchError(f"{what} needs the optional {EXTRA!r} extra: pip install 'satbench[{EXTRA}]' "
                            f"(transformers==5.23.0)") from None
    return transformers


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """transformers' load reports and progress bars off (satbench reports what it dropped itself)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


# --------------------------------------------------------------------------------------------------------------------
# Names and snapshots
# --------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    """A model's files: ``folder`` holds ``config.json`` (and maybe ``preprocessor_config.json``, weights)."""

    name: str  # the card name: hf-transformers:<repo>[@rev] or hf-transformers:<absolute folder>
    folder: Path
    repo: Optional[str]
    revision: Optional[str]  # as requested (hub), None for a folder
    commit: Optional[str]  # the hub commit config.json came from (a folder inside the hub cache: its commit)
    config: dict[str, Any] = field(hash=False, compare=False)
    preprocessor: Optional[dict[str, Any]] = field(hash=False, compare=False)
    preprocessor_missing: str = ""


def _spec(name: str) -> str:
    spec = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if not spec:
        raise UnknownNameError(f"model {PREFIX!r} names no model; use {FORMAT}")
    return spec


def _is_folder_spec(spec: str) -> bool:
    return spec.startswith(("/", "./", "../", "~")) or Path(spec).expanduser().is_dir()


def _read_json(path: Path, what: str) -> dict[str, Any]:
    from satbench.io.bounded import read_json_bounded

    data = read_json_bounded(path, what=what, limit=_JSON_LIMIT, error=WeightsError)
    if not isinstance(data, dict):
        raise WeightsError(f"{what} {path} must hold a JSON object, got {type(data).__name__}")
    return data


def _offline_hint(repo: str) -> str:
    return (f"place a snapshot folder (config.json, preprocessor_config.json, model.safetensors) and name it: "
            f"--model {PREFIX}/path/to/folder, or fetch it once with network access (`hf download {repo}`)")


@lru_cache(maxsize=None)
def snapshot(name: str) -> Snapshot:
    """The snapshot ``name`` refers to: a local folder, or ``config.json`` (and ``preprocessor_config.json``) from the
    Hugging Face cache / hub (offline: the cache only, one line when it is not there)."""
    from satbench.io.download import DownloadError, HubRef, commit_of, hub_fetch

    spec = _spec(name)
    if _is_folder_spec(spec):
        folder = Path(spec).expanduser().resolve()
        if not folder.is_dir():
            raise WeightsError(f"model {name}: snapshot folder {folder} does not exist (expected a folder with "
                               f"config.json, preprocessor_config.json and model.safetensors, or {FORMAT})")
        cfg_path = folder / CONFIG_FILE
        if not cfg_path.is_file():
            raise WeightsError(f"model {name}: {folder} has no config.json; a transformers snapshot folder holds "
                               f"config.json, preprocessor_config.json and model.safetensors (save_pretrained writes them)")
        pre_path = folder / PREPROCESSOR_FILE
        pre = _read_json(pre_path, "preprocessor config") if pre_path.is_file() else None
        return Snapshot(f"{PREFIX}{folder}", folder, None, None, commit_of(cfg_path), _read_json(cfg_path, "config"),
                        pre, "" if pre is not None else f"{pre_path} does not exist")
    m = _REPO_RE.match(spec)
    if not m:
        raise UnknownNameError(f"model {name!r}: expected {FORMAT} (e.g. {PREFIX}facebook/dinov2-small)")
    repo, rev = m.group("repo"), m.group("rev")
    try:
        cfg_path, commit = hub_fetch(HubRef("model", repo, rev or "main", CONFIG_FILE), progress=False)
    except DownloadError as exc:
        raise WeightsError(f"model {name}: {exc}; {_offline_hint(repo)}") from None
    pre, missing = None, ""
    try:  # at the commit config.json came from
        pre_path, _ = hub_fetch(HubRef("model", repo, commit or rev or "main", PREPROCESSOR_FILE), progress=False)
        pre = _read_json(pre_path, "preprocessor config")
    except DownloadError as exc:
        missing = str(exc)
    return Snapshot(f"{PREFIX}{repo}" + (f"@{rev}" if rev else ""), cfg_path.parent, repo, rev, commit,
                    _read_json(cfg_path, "config"), pre, missing)


# --------------------------------------------------------------------------------------------------------------------
# Classes and configs
# --------------------------------------------------------------------------------------------------------------------
def remote_code_reason(snap: Snapshot) -> Optional[str]:
    """Why the snapshot's config needs ``trust_remote_code`` (an ``auto_map``, or a ``model_type`` transformers does
    not ship), or None."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    cfg = snap.config
    model_type = cfg.get("model_type")
    if "auto_map" in cfg:
        return f"its config.json has an auto_map ({', '.join(sorted(map(str, cfg['auto_map'])))})"
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        return f"its model_type {model_type!r} is not a model transformers ships"
    return None


def class_for(snap: Snapshot) -> tuple[Optional[HFClass], Optional[str]]:
    """``(class, remote-code reason)``: the shipped class of the snapshot, or (None, why it needs remote code).
    A shipped model_type that is not one of :data:`CLASSES` is one line naming those."""
    why = remote_code_reason(snap)
    if why is not None:
        return None, why
    model_type = snap.config["model_type"]
    if model_type not in CLASSES:
        raise SatbenchError(f"model {snap.name}: model_type {model_type!r} is not one of the transformers vision "
                            f"classes satbench runs ({SUPPORTED}; model types {', '.join(sorted(CLASSES))})")
    return CLASSES[model_type][0], None


def _sub_config(snap: Snapshot) -> dict[str, Any]:
    """The config dict of the vision model (a two-tower repository's ``vision_config``)."""
    model_type = snap.config.get("model_type")
    tower = CLASSES.get(model_type, (None, None))[1] if isinstance(model_type, str) else None
    if tower is None:
        return snap.config
    sub = snap.config.get(tower)
    if not isinstance(sub, dict):
        raise WeightsError(f"model {snap.name}: config.json of model_type {model_type!r} has no {tower} object")
    return sub


def hf_config(snap: Snapshot, trust_remote_code: bool = False) -> Any:
    """The transformers config object of the vision model (remote code only with ``trust_remote_code``)."""
    tf = _transformers(f"model {snap.name}")
    cls, why = class_for(snap)
    with _quiet():
        if cls is None:
            if not trust_remote_code:
                raise SatbenchError(refusal(snap, why))
            return tf.AutoConfig.from_pretrained(str(snap.folder), trust_remote_code=True)
        try:
            return getattr(tf, cls.config_class).from_dict(dict(_sub_config(snap)))
        except (TypeError, ValueError, KeyError) as exc:
            raise WeightsError(f"model {snap.name}: config.json does not make a {cls.config_class} "
                               f"({str(exc).splitlines()[0][:200]})") from None


def refusal(snap: Snapshot, why: Optional[str]) -> str:
    """The one-line refusal of a repository that needs ``trust_remote_code``."""
    return (f"model {snap.name} needs trust_remote_code: {why}; satbench runs only the vision classes shipped with "
            f"transformers ({SUPPORTED}) unless you pass --trust-remote-code (runs the repository's own Python code; "
            f"recorded)")


def _int(cfg: dict[str, Any], key: str, where: str, default: Optional[int] = None) -> int:
    value = cfg.get(key, default)
    if isinstance(value, (list, tuple)) and len(value) == 2 and value[0] == value[1]:
        value = value[0]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise WeightsError(f"{where}: config.json key {key} must be a non-negative integer, got {value!r}")
    return value


def layout_for(cls: Optional[HFClass], cfg: dict[str, Any], where: str) -> TokenLayout:
    """The declared token layout of a shipped class from its config (remote code: CLS, no registers, checked at
    build from the model's parameters)."""
    if cls is None:
        return TokenLayout(cls=1, registers=_int(cfg, "num_register_tokens", where, 0))
    regs = _int(cfg, cls.registers_key, where, 0) if cls.registers_key else 0
    return TokenLayout(cls=1 if cls.cls_token else 0, registers=regs, register_kind="register")


def default_pool(cls: Optional[HFClass], cfg: dict[str, Any], layout: TokenLayout) -> tuple[str, str]:
    """``(pool, why)`` of a class (SigLIP without its head: ``avg``)."""
    if cls is None:
        return ("cls", "remote code: the final-normed CLS token") if layout.cls else (
            "avg", "remote code without a CLS token: the mean of the patch tokens")
    if cls.head and not cfg.get("vision_use_head", True):
        return "avg", "SigLIP built without its attention-pooling head (vision_use_head false): the mean of the patch tokens"
    return cls.default_pool, cls.why


def check_pool(pool: str, cls: Optional[HFClass], cfg: dict[str, Any], layout: TokenLayout, where: str) -> str:
    """``pool`` if this model can give it (``cls`` needs a CLS token, ``head`` SigLIP's pooling head)."""
    from satbench.models.backbones.tokens import check_pool as check_token_pool

    if pool == HEAD:
        if cls is None or not cls.head or not cfg.get("vision_use_head", True):
            raise SatbenchError(f"{where}: pool head is SigLIP's attention-pooling head; this model has none "
                                f"(pools: {', '.join(POOLS)})")
        return pool
    return check_token_pool(pool, layout, where)


def _normalization(snap: Snapshot) -> str:
    """A preset for the preprocessor's ``image_mean`` / ``image_std`` (``imagenet`` when they are ImageNet's)."""
    where = f"model {snap.name}"
    pre = snap.preprocessor
    if pre is None:
        raise WeightsError(f"{where}: no preprocessor_config.json ({snap.preprocessor_missing}); satbench does not "
                           f"guess a model's input normalisation: place the repository's preprocessor_config.json "
                           f"(image_mean, image_std) in {snap.folder}")
    rescale = pre.get("rescale_factor", 1 / 255)
    if pre.get("do_rescale", True) is not True or not isinstance(rescale, (int, float)) or abs(rescale - 1 / 255) > 1e-9:
        raise WeightsError(f"{where}: preprocessor_config.json does not rescale pixels by 1/255 (do_rescale "
                           f"{pre.get('do_rescale', True)!r}, rescale_factor {rescale!r}); satbench feeds [0, 1] images")
    if pre.get("do_normalize", True) is False:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    else:
        mean, std = pre.get("image_mean"), pre.get("image_std")
        ok = all(isinstance(v, list) and len(v) == 3 and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                              for x in v) for v in (mean, std))
        if not ok or min(std) <= 0:  # type: ignore[arg-type]
            raise WeightsError(f"{where}: preprocessor_config.json image_mean / image_std must be 3 numbers each "
                               f"(std > 0), got {mean!r} / {std!r}")
        mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)  # type: ignore[union-attr]
    ref = PRESETS["imagenet"]
    if all(abs(a - b) < 1e-6 for a, b in zip(mean + std, ref.mean + ref.std)):
        return "imagenet"
    preset = snap.name
    if preset not in PRESETS or PRESETS[preset].mean != mean or PRESETS[preset].std != std:
        register_normalization(Normalization(preset, mean, std))  # type: ignore[arg-type]
    return preset


# --------------------------------------------------------------------------------------------------------------------
# The card
# --------------------------------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def card_for(name: str) -> Any:
    """The dynamic card of ``hf-transformers:<repo>[@rev]`` / ``hf-transformers:<folder>`` (family
    ``hf-transformers``), from ``config.json`` and ``preprocessor_config.json`` (no model code runs)."""
    from satbench.models.cards import ModelCard

    _transformers(f"model {name}")
    snap = snapshot(name)
    cls, why_remote = class_for(snap)
    cfg = _sub_config(snap)
    where = f"model {snap.name}"
    if cls is None:  # remote code: the dimensions must be readable without running it
        try:
            for key in ("hidden_size", "patch_size", "num_hidden_layers"):
                _int(cfg, key, where)
        except WeightsError as exc:
            raise SatbenchError(f"{refusal(snap, why_remote)}; and even then satbench needs them from config.json: "
                                f"{str(exc).split(': ', 1)[-1]}") from None
    layout = layout_for(cls, cfg, where)
    pool, why = default_pool(cls, cfg, layout)
    embed = _int(cfg, "hidden_size", where)
    weights: dict[str, Any] = {"filename": WEIGHTS_FILE}
    if snap.repo:
        weights.update(hf_repo=snap.repo, revision=snap.commit or snap.revision or "main")
    arch = cls.name if cls is not None else f"remote code ({snap.config.get('model_type')!r})"
    remote = f"; needs trust_remote_code: {why_remote}" if why_remote else ""
    return ModelCard(
        name=snap.name, family="hf-transformers", arch=arch, patch_size=_int(cfg, "patch_size", where),
        embed_dim=embed, depth=_int(cfg, "num_hidden_layers", where), num_heads=_int(cfg, "num_attention_heads", where, 0),
        img_size=_int(cfg, "image_size", where, 224), feature_dim=pool_dim(embed, pool) if pool in POOLS else embed,
        normalization=_normalization(snap), feature=pool, weights={"pretrain": weights},
        description=(f"transformers {arch} from {snap.repo or snap.folder}; tokens {layout.describe()}; default pool "
                     f"{pool}: {why}{remote}"),
        license=str(snap.config.get("license", "") or ""),
    )


def default_weights(card: Any, kind: str) -> Optional[str]:
    """The weights of a card made from a snapshot: ``hf:<repo>@<commit>/model.safetensors`` or the folder itself."""
    if kind != "pretrain":
        return None
    snap = snapshot(card.name)
    if snap.repo is None:
        return str(snap.folder)
    return f"hf:{snap.repo}@{snap.commit or snap.revision or 'main'}/{WEIGHTS_FILE}"


# --------------------------------------------------------------------------------------------------------------------
# The backbone
# --------------------------------------------------------------------------------------------------------------------
class HFTransformersBackbone(nn.Module):
    """A transformers vision model with satbench's backbone interface; its parameters live under ``model.``."""

    def __init__(self, model: nn.Module, *, snap: Snapshot, cls: Optional[HFClass], layout: TokenLayout, pool: str,
                 patch_size: int, trust_remote_code: bool) -> None:
        super().__init__()
        self.model = model
        self.snap = snap
        self.hf_class = cls
        self.layout = layout
        self.feature_pool = pool
        self._patch = int(patch_size)
        self.trust_remote_code = bool(trust_remote_code)
        self.embed_dim = int(model.config.hidden_size)
        self.depth = int(model.config.num_hidden_layers)
        self._kwargs = {"interpolate_pos_encoding": True} if cls is not None and cls.interpolate_kwarg else {}

    @property
    def patch_size(self) -> int:
        return self._patch

    @property
    def class_name(self) -> str:
        return type(self.model).__name__

    @property
    def options(self) -> dict[str, Any]:
        import transformers

        s = self.snap
        return {"family": "hf-transformers", "hf_class": self.class_name, "hf_model_type": s.config.get("model_type"), "hf_repo": s.repo,
                "hf_revision": s.commit or s.revision, "snapshot": str(s.folder), "pool": self.feature_pool,
                "tokens": self.layout.describe(),
                "final_norm": (self.hf_class.final_norm if self.hf_class and self.hf_class.final_norm
                               else "last_hidden_state (the model's own final norm)"),
                "positions": self.hf_class.positions if self.hf_class else "remote code",
                "trust_remote_code": self.trust_remote_code, "transformers": transformers.__version__}

    @property
    def feature_dim(self) -> int:
        return pool_dim(self.embed_dim, self.feature_pool) if self.feature_pool in POOLS else self.embed_dim

    def max_input_size(self) -> int:
        return MAX_GRID_SIDE * self._patch

    def check_input_size(self, height: int, width: int) -> None:
        """One line for a size this model cannot take (before any image is decoded): grid bounds, whole patches."""
        what = f"transformers {self.class_name} ({self.snap.name})"
        check_input_grid(what, self._patch, height, width, MAX_GRID_SIDE)
        check_whole_patches(what, self._patch, height, width)

    @property
    def _norm(self) -> Optional[nn.Module]:
        """The final norm satbench applies to ``last_hidden_state`` (CLIP's ``post_layernorm``), or None."""
        name = self.hf_class.final_norm if self.hf_class is not None else None
        return getattr(self.model, name) if name else None

    def _final(self, hidden: Tensor) -> Tensor:
        norm = self._norm
        return norm(hidden) if norm is not None else hidden

    def forward_features(self, x: Tensor, *, layers: Sequence[int] = (), norm_layers: bool = True,
                         input_res: Any = None) -> BackboneOutput:
        """The pooled feature, the final-normed patch tokens and chosen block outputs (patch tokens)."""
        if input_res is not None:
            raise SatbenchError("transformers models take no input_res (their positions are not GSD-scaled)")
        wanted = sorted(_check_layers(layers, self.depth))
        out = self.model(pixel_values=x, output_hidden_states=bool(wanted), **self._kwargs)
        tokens = self._final(out.last_hidden_state)
        grid = (x.shape[-2] // self._patch, x.shape[-1] // self._patch)
        where = f"transformers {self.class_name} ({self.snap.name})"
        n = self.layout.prefix + grid[0] * grid[1]
        if tokens.ndim != 3 or tokens.shape[1] != n:
            raise SatbenchError(f"{where}: token layout {self.layout.describe()} at {x.shape[-2]} x {x.shape[-1]} px "
                                f"means {n} tokens, the model returned {tuple(tokens.shape)}")
        if self.feature_pool == HEAD:
            feature = out.pooler_output
        else:
            feature = pool_tokens(tokens, self.layout, self.feature_pool, where)
        taken: dict[int, Tensor] = {}
        if wanted:
            hs = out.hidden_states
            if hs is None or len(hs) != self.depth + 1:
                raise SatbenchError(f"{where}: expected {self.depth + 1} hidden states, got "
                                    f"{None if hs is None else len(hs)}")
            for i in wanted:
                h = hs[i + 1]
                if norm_layers:
                    h = self._layer_norm(h, i)
                taken[i] = h[:, self.layout.prefix:]
        return BackboneOutput(cls=feature, patches=tokens[:, self.layout.prefix:], register=None, layers=taken,
                              grid=grid)

    def _layer_norm(self, h: Tensor, i: int) -> Tensor:
        """Block ``i``'s output through the model's final norm (the last block: ``last_hidden_state`` as returned)."""
        if self._norm is not None:
            return self._final(h)
        norm = next((getattr(self.model, a) for a in ("layernorm", "norm", "post_layernorm")
                     if isinstance(getattr(self.model, a, None), nn.LayerNorm)), None)
        if norm is None:
            raise SatbenchError(f"transformers {self.class_name}: no final norm to apply to layer {i}")
        return norm(h)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x).cls


def _layout_from_parameters(model: nn.Module, declared: TokenLayout, where: str) -> TokenLayout:
    """Check (shipped classes) or read (remote code) the token layout from the model's own parameters."""
    emb = getattr(model, "embeddings", None)
    cls = 1 if any(getattr(emb, a, None) is not None for a in ("cls_token", "class_embedding")) else 0
    reg = getattr(emb, "register_tokens", None)
    registers = int(reg.shape[1]) if isinstance(reg, Tensor) and reg.ndim == 3 else 0
    found = TokenLayout(cls=cls, registers=registers, register_kind="register")
    if found != declared:
        raise SatbenchError(f"{where}: the model's parameters give token layout {found.describe()}, its config "
                            f"declares {declared.describe()}; satbench cannot tell its token groups apart")
    return found


#: Card names built with ``trust_remote_code`` in this process: only their checkpoints are converted by the
#: repository's own class (:func:`satbench.models.weights.load_model` builds the model before it reads the weights).
_TRUSTED: set[str] = set()

BUILD_OPTIONS = ("family", "pool", "trust_remote_code", "hf_class", "hf_model_type", "hf_repo", "hf_revision", "snapshot",
                 "tokens", "final_norm", "positions", "transformers")


def build(card: Any, **options: Any) -> nn.Module:
    """Build the card's transformers model (random init, seeded by the caller; weights come through
    :func:`satbench.models.weights.load_model`). A repository that needs remote code is refused unless
    ``trust_remote_code``."""
    unknown = sorted(set(options) - set(BUILD_OPTIONS))
    if unknown:
        raise SatbenchError(f"model {card.name}: unknown build options for the hf-transformers family: "
                            f"{', '.join(unknown)}")
    tf = _transformers(f"model {card.name}")
    snap = snapshot(card.name)
    trust = bool(options.get("trust_remote_code", False))
    cls, why = class_for(snap)
    if cls is None and not trust:
        raise SatbenchError(refusal(snap, why))
    cfg_obj = hf_config(snap, trust_remote_code=trust)
    if cls is None:
        _TRUSTED.add(card.name)
    where = f"model {card.name}"
    cfg = _sub_config(snap)
    declared = layout_for(cls, cfg, where)
    if options.get("tokens") not in (None, declared.describe()):
        raise SatbenchError(f"{where}: option tokens {options['tokens']!r} is not this model's token layout "
                            f"{declared.describe()}")
    if options.get("hf_class") not in (None, cls.name if cls else None):
        raise SatbenchError(f"{where}: option hf_class {options['hf_class']!r} is not this model's class")
    with _quiet():
        if cls is None:
            model = tf.AutoModel.from_config(cfg_obj, trust_remote_code=True)
        else:
            model = getattr(tf, cls.name)(cfg_obj, **dict(cls.build_kwargs))
    layout = _layout_from_parameters(model, declared, where)
    pool = check_pool(str(options.get("pool") or default_pool(cls, cfg, layout)[0]), cls, cfg, layout, where)
    patch = _int(cfg, "patch_size", where)
    return HFTransformersBackbone(model.eval(), snap=snap, cls=cls, layout=layout, pool=pool, patch_size=patch,
                                  trust_remote_code=trust)


def _remote_class(tf: Any, cfg_obj: Any) -> Any:
    """The repository's own model class for ``AutoModel`` (its code is trusted by the caller)."""
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    ref = (getattr(cfg_obj, "auto_map", None) or {}).get("AutoModel")
    if not ref:
        raise SatbenchError(f"config {type(cfg_obj).__name__} names no AutoModel in its auto_map")
    return get_class_from_dynamic_module(ref, getattr(cfg_obj, "_name_or_path", None) or "")


def _dropped(key: str, cls: HFClass) -> bool:
    return any(key == d or key.startswith(d) for d in cls.dropped)


def state_dict_from_checkpoint(obj: Any, card: Any) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The backbone's state dict (keys under ``model.``) from a transformers checkpoint, converted by transformers'
    own loader (its key renames), strictly: missing or mis-shaped keys are an error; unexpected keys are dropped
    only by the class's :attr:`HFClass.dropped` list. Remote-code repositories: the file's keys as they are."""
    from satbench.models.checkpoints import fmt_keys, nesting_hint

    if not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise WeightsError(f"{card.name}: expected a flat state dict of transformers keys{nesting_hint(obj)}")
    tf = _transformers(f"model {card.name}")
    snap = snapshot(card.name)
    cls, _ = class_for(snap)
    dtypes: dict[str, int] = {}
    for v in obj.values():
        if v.is_floating_point() and v.dtype != torch.float32:
            name = str(v.dtype).removeprefix("torch.")
            dtypes[name] = dtypes.get(name, 0) + 1
    extras: dict[str, Any] = {"hf_file_dtypes": dtypes} if dtypes else {}
    if cls is None and card.name not in _TRUSTED:
        raise SatbenchError(refusal(snap, class_for(snap)[1]))
    cfg_obj = hf_config(snap, trust_remote_code=cls is None)
    bad = [k for k in obj if not torch.isfinite(obj[k]).all()] if any(v.is_floating_point() for v in obj.values()) else []
    if bad:
        raise WeightsError(f"{card.name}: non-finite values (NaN/inf) in {fmt_keys(sorted(bad))}")
    model_class = getattr(tf, cls.name) if cls is not None else _remote_class(tf, cfg_obj)
    drop = cls or HFClass("remote code", "", True)
    with _quiet():
        try:
            model, info = model_class.from_pretrained(None, config=cfg_obj, state_dict=obj, output_loading_info=True,
                                                      ignore_mismatched_sizes=True,  # reported, then refused below
                                                      **dict(drop.build_kwargs))
        except (RuntimeError, ValueError, KeyError) as exc:
            raise WeightsError(f"{card.name}: transformers could not load the checkpoint into {model_class.__name__} "
                               f"({str(exc).strip().splitlines()[0][:300]})") from None
    problems = []
    if info.get("missing_keys"):
        problems.append(f"missing keys: {fmt_keys(sorted(info['missing_keys']))}")
    if info.get("mismatched_keys"):
        problems.append(f"mis-shaped keys: {fmt_keys(sorted(str(k[0] if isinstance(k, tuple) else k) for k in info['mismatched_keys']))}")
    unexpected = sorted(k for k in info.get("unexpected_keys", ()) if not _dropped(k, drop))
    if unexpected:
        problems.append(f"unexpected keys: {fmt_keys(unexpected)}")
    if info.get("error_msgs"):
        problems.append(f"errors: {'; '.join(str(e).splitlines()[0] for e in info['error_msgs'])[:300]}")
    if problems:
        raise WeightsError(f"{card.name}: does not fit transformers {model_class.__name__}: " + "; ".join(problems))
    dropped = sorted(k for k in info.get("unexpected_keys", ()) if _dropped(k, drop))
    if dropped:
        groups = sorted({next(d for d in drop.dropped if k == d or k.startswith(d)) for k in dropped})
        extras.update(dropped_keys=len(dropped), dropped_groups=groups)
    return {f"model.{k}": v for k, v in model.state_dict().items()}, extras


register_family(Family(
    "hf-transformers", build, state_dict_from_checkpoint,
    options={"pool": OptionSpec(str, HF_POOLS, None, "cls | avg | cls+avg | head (SigLIP); default per class"),
             "trust_remote_code": OptionSpec(bool, (), False, "run a repository's own code (--trust-remote-code)"),
             "family": OptionSpec(str, ("hf-transformers",)), "hf_class": OptionSpec(str), "hf_model_type": OptionSpec(str), "hf_repo": OptionSpec(str),
             "hf_revision": OptionSpec(str), "snapshot": OptionSpec(str),
             "tokens": OptionSpec(str, (), None, "the token layout (checked, not chosen)"),
             "final_norm": OptionSpec(str), "positions": OptionSpec(str), "transformers": OptionSpec(str)},
    layer_decay_embedding_names=("embeddings",),
    no_weight_decay_names=("embeddings.cls_token", "embeddings.register_tokens", "embeddings.position_embeddings"),
    name_prefix=PREFIX,
    dynamic_card=lambda name: card_for(name),
    default_weights=default_weights,
    naming="hf-transformers:<owner>/<repo>[@rev], or a local snapshot folder (e.g. hf-transformers:facebook/dinov2-small)",
    about="transformers vision models: Dinov2, Dinov2WithRegisters, DINOv3ViT, ViT, CLIP / SigLIP vision towers",
    extra="transformers",
    requires=("transformers",),
))

__all__ = ["CLASSES", "HFClass", "HFTransformersBackbone", "PREFIX", "build", "card_for", "class_for",
           "default_weights", "remote_code_reason", "snapshot", "state_dict_from_checkpoint"]
