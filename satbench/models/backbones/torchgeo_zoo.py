"""The TorchGeo model zoo's RGB-capable ViTs: ``--model torchgeo:<builder>`` (the optional ``torchgeo`` extra).

Built by torchgeo's own builders (``torchgeo.models.<builder>(weights=None)``), run by torchgeo's own forward, with
RGB spectral metadata given explicitly and recorded (:data:`ZOO`):

* ``dofa_small_patch16_224`` (no released weights), ``dofa_base_patch16_224``, ``dofa_large_patch16_224``: DOFA with
  the central wavelengths of Sentinel-2 B4/B3/B2 for R, G, B in micrometres, as DOFA and torchgeo take them
  (0.665, 0.56, 0.49). Feature: torchgeo's ``global_pool=True`` forward, ``fc_norm`` of the mean patch token
  (``avg``); the released files have no ``fc_norm``, so it stays at its init (a plain LayerNorm), as in torchgeo.
* ``scalemae_large_patch16``: Scale-MAE (fMoW RGB). Its forward takes no GSD: the ground-resolution ratio is the
  model's ``res`` attribute (build option ``res``, torchgeo's default 1.0, recorded); a kNN ``input_res`` policy
  sets it per batch. Feature: the final-normed CLS (timm ``global_pool='token'``).
* ``panopticon_vitb14``: Panopticon with ``chn_ids`` = the R, G, B wavelengths in nm (665, 560, 490). Feature: the
  final-normed CLS of its DINOv2 ViT-B/14 (timm ``global_pool='token'``).
* ``copernicusfm_base``: Copernicus-FM in ``spectral`` mode with wavelengths (665, 560, 490) nm and bandwidths
  (30, 35, 65) nm (Sentinel-2 B4/B3/B2, torchgeo's example values), metadata unknown (NaN: its learned coordinate,
  scale and time tokens). Feature: ``fc_norm`` of the mean patch token (``avg``), ``fc_norm`` filled as for DOFA.

Refused in one line naming the bands RGB lacks (:data:`REFUSED`): CROMA (12-band Sentinel-2 optical, 2-band SAR)
and the DINOv2-architecture ViT-S/14 and ViT-B/14 (SoftCon weights: 13 Sentinel-2 bands or Sentinel-1 VV/VH; the
only DINOv2-architecture weights torchgeo 0.8.1 ships).

* Positions off the built grid (torchgeo fixes it at build for DOFA, Panopticon and Scale-MAE): DOFA and Panopticon
  get their ``pos_embed`` resized per forward by torchgeo's own ``resize_abs_pos_embed`` (bicubic, antialias; what
  torchgeo does at build for Panopticon and per forward in Copernicus-FM); Scale-MAE's ``patch_embed.num_patches`` is
  set to the input's grid for its own ``_pos_embed`` (square grids only, as torchgeo's ``int(num_patches ** 0.5)``).
  Recorded as ``model_options.positions``.
* Normalisation per model (:attr:`ZooModel.normalization`, why in the card): Scale-MAE's weights transform is
  ``/255`` then ImageNet mean/std; the others declare none in torchgeo (``Identity`` or sensor-dependent), and
  satbench's declared choice is ImageNet mean/std on [0, 1] RGB.
* Weights: the card's entry is torchgeo's ``WeightsEnum`` URL (Hugging Face), downloaded into the satbench cache;
  offline, one line says where to place the file. ``--weights FILE`` loads a local file strictly: only the keys of
  :attr:`ZooModel.dropped` are dropped and only those of :attr:`ZooModel.filled` may be absent (left at init, as
  torchgeo's builders allow), both counted in ``weights.extras``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterator, Optional, Sequence

import torch
from torch import Tensor, nn

from satbench.errors import InputSizeError, SatbenchError, UnknownNameError, WeightsError
from satbench.models.backbones.base import (MAX_GRID_SIDE, BackboneOutput, Family, OptionSpec, check_input_grid,
                                           check_whole_patches, register_family)
from satbench.models.backbones.satdino import _check_layers
from satbench.models.backbones.scalemae import INPUT_RES_POLICIES, input_res_for, input_res_tensor
from satbench.models.backbones.tokens import TokenLayout, check_pool, pool_dim, pool_tokens

PREFIX = "torchgeo:"
EXTRA = "torchgeo"
PIN = "torchgeo==0.8.1"
RGB_UM = (0.665, 0.56, 0.49)  # Sentinel-2 B4, B3, B2 central wavelengths (R, G, B), micrometres
RGB_NM = (665.0, 560.0, 490.0)
RGB_BW_NM = (30.0, 35.0, 65.0)  # Sentinel-2 B4, B3, B2 bandwidths, nm
_IMAGENET_WHY = "torchgeo declares no normalisation for these weights; satbench's declared choice: ImageNet mean/std on [0, 1] RGB"
_HEAD = ("head.weight", "head.bias")
_FC_NORM = ("fc_norm.weight", "fc_norm.bias")


@dataclass(frozen=True)
class ZooModel:
    """One torchgeo builder satbench runs on RGB: dims, tokens, pool, normalisation, spectral inputs, weights."""

    builder: str
    kind: str  # dofa | scalemae | panopticon | copernicusfm
    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    weights: Optional[str]  # "<WeightsEnum class>.<member>" (torchgeo.models), or None: no released weights
    default_pool: str
    pools: tuple[str, ...]
    why: str
    normalization: str = "imagenet"
    normalization_why: str = _IMAGENET_WHY
    spectral: dict[str, Any] = field(default_factory=dict)
    positions: str = ""
    dropped: tuple[str, ...] = _HEAD
    filled: tuple[str, ...] = ()
    img_size: int = 224


_DOFA = dict(kind="dofa", patch_size=16, default_pool="avg", pools=("avg",),
             why="torchgeo's DOFA forward (global_pool=True): fc_norm of the mean patch token, CLS left out",
             spectral={"wavelengths_um": list(RGB_UM), "bands": ["R (S2 B4)", "G (S2 B3)", "B (S2 B2)"]},
             positions="pos_embed resized per forward to the input grid by torchgeo's resize_abs_pos_embed "
                       "(bicubic, antialias); identity at the built 14x14 grid",
             filled=_FC_NORM)
ZOO: dict[str, ZooModel] = {
    "dofa_small_patch16_224": ZooModel("dofa_small_patch16_224", embed_dim=384, depth=12, num_heads=6, weights=None,
                                       **_DOFA),  # type: ignore[arg-type]
    "dofa_base_patch16_224": ZooModel("dofa_base_patch16_224", embed_dim=768, depth=12, num_heads=12,
                                      weights="DOFABase16_Weights.DOFA_MAE", **_DOFA),  # type: ignore[arg-type]
    "dofa_large_patch16_224": ZooModel("dofa_large_patch16_224", embed_dim=1024, depth=24, num_heads=16,
                                       weights="DOFALarge16_Weights.DOFA_MAE", **_DOFA),  # type: ignore[arg-type]
    "scalemae_large_patch16": ZooModel(
        "scalemae_large_patch16", "scalemae", 16, 1024, 24, 16, "ScaleMAELarge16_Weights.FMOW_RGB", "cls",
        ("cls", "avg", "cls+avg"), "timm global_pool='token' (torchgeo's ScaleMAE is a timm VisionTransformer): the "
        "final-normed CLS token", normalization_why="the weights' transforms: /255 then ImageNet mean/std",
        spectral={"res": "build option res (torchgeo's default 1.0), or the kNN input_res policy per batch"},
        positions="torchgeo's GSD sin-cos _pos_embed at the input grid (patch_embed.num_patches set to it; square "
                  "grids only); the stored pos_embed is not used"),
    "panopticon_vitb14": ZooModel(
        "panopticon_vitb14", "panopticon", 14, 768, 12, 12, "Panopticon_Weights.VIT_BASE14", "cls",
        ("cls", "avg", "cls+avg"), "timm global_pool='token' of Panopticon's DINOv2 ViT-B/14: the final-normed CLS",
        spectral={"chn_ids_nm": list(RGB_NM)},
        positions="pos_embed resized per forward to the input grid by torchgeo's resize_abs_pos_embed (bicubic, "
                  "antialias); the checkpoint's 37x37 table resized to the built 16x16 at load, as torchgeo does",
        dropped=("mask_token",)),
    "copernicusfm_base": ZooModel(
        "copernicusfm_base", "copernicusfm", 16, 768, 12, 12, "CopernicusFM_Base_Weights.CopernicusFM_ViT", "avg",
        ("avg",), "torchgeo's Copernicus-FM forward (global_pool=True): fc_norm of the mean patch token",
        spectral={"input_mode": "spectral", "wavelengths_nm": list(RGB_NM), "bandwidths_nm": list(RGB_BW_NM),
                  "metadata": "unknown (NaN): learned coord/scale/time tokens"},
        positions="Copernicus-FM's own resize_abs_pos_embed to the input grid (square grids only)", filled=_FC_NORM),
}

_S2_12 = "Sentinel-2 B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, B11, B12"
REFUSED: dict[str, str] = {
    "croma_base": f"CROMA's optical encoder takes 12 Sentinel-2 bands ({_S2_12}) and its radar encoder Sentinel-1 VV, VH",
    "croma_large": f"CROMA's optical encoder takes 12 Sentinel-2 bands ({_S2_12}) and its radar encoder Sentinel-1 VV, VH",
    "vit_small_patch14_dinov2": "its only weights are SoftCon's: 13 Sentinel-2 bands (B1-B12 with B8A and B10) or "
                                "Sentinel-1 VV, VH",
    "vit_base_patch14_dinov2": "its only weights are SoftCon's: 13 Sentinel-2 bands (B1-B12 with B8A and B10) or "
                               "Sentinel-1 VV, VH",
}
FORMAT = f"torchgeo:<builder>, one of {', '.join(ZOO)}"


def _torchgeo(what: str) -> Any:
    """``torchgeo.models``, or one line naming the extra to install."""
    try:
        import torchgeo.models as tgm
    except ImportError:
        raise SatbenchError(f"{what} needs the optional {EXTRA!r} extra: pip install 'satbench[{EXTRA}]' "
                            f"({PIN}, about 0.3 GB with its dependencies beside torch)") from None
    return tgm


def zoo_model(name: str) -> ZooModel:
    """The :class:`ZooModel` of ``torchgeo:<builder>``; a model needing bands RGB lacks is one line naming them."""
    builder = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if builder in REFUSED:
        raise SatbenchError(f"model {PREFIX}{builder} needs bands that RGB images lack: {REFUSED[builder]}; satbench's "
                            f"datasets are RGB (torchgeo ViTs satbench runs: {', '.join(ZOO)})")
    if builder not in ZOO:
        from satbench.errors import close_matches

        raise UnknownNameError(f"model {PREFIX}{builder!r} is not a torchgeo ViT satbench runs on RGB"
                               f"{close_matches(builder, list(ZOO) + list(REFUSED))}; use {FORMAT}")
    return ZOO[builder]


def weights_enum(spec: ZooModel) -> Any:
    """torchgeo's ``Weights`` entry of the model (None without released weights)."""
    if spec.weights is None:
        return None
    cls_name, member = spec.weights.split(".")
    return getattr(getattr(_torchgeo(f"model {PREFIX}{spec.builder}"), cls_name), member)


@lru_cache(maxsize=None)
def card_for(name: str) -> Any:
    """The dynamic card of ``torchgeo:<builder>`` (family ``torchgeo``)."""
    from satbench.models.cards import ModelCard

    spec = zoo_model(name)
    tgm = _torchgeo(f"model {PREFIX}{spec.builder}")
    w = weights_enum(spec)
    weights: dict[str, dict[str, Any]] = {}
    if w is not None:
        weights["pretrain"] = {"url": str(w.url), "filename": str(w.url).rsplit("/", 1)[-1]}
    layout = TokenLayout(cls=1)
    src = f"weights {spec.weights} ({w.url})" if w is not None else "no released weights (--weights FILE or random)"
    return ModelCard(
        name=f"{PREFIX}{spec.builder}", family="torchgeo", arch=spec.builder, patch_size=spec.patch_size,
        embed_dim=spec.embed_dim, depth=spec.depth, num_heads=spec.num_heads, img_size=spec.img_size,
        feature_dim=pool_dim(spec.embed_dim, spec.default_pool), normalization=spec.normalization,
        feature=spec.default_pool, weights=weights,
        description=(f"torchgeo {getattr(tgm, '__name__', 'torchgeo.models')}.{spec.builder}; {src}; tokens "
                     f"{layout.describe()}; default pool {spec.default_pool}: {spec.why}; normalisation "
                     f"{spec.normalization}: {spec.normalization_why}; RGB inputs {spec.spectral}"),
    )


@contextlib.contextmanager
def _swapped(module: nn.Module, name: str, value: Tensor) -> Iterator[None]:
    """``module.<name>`` (a parameter) read as ``value`` during one forward, restored after."""
    orig = module._parameters[name]
    module._parameters[name] = value  # type: ignore[assignment]
    try:
        yield
    finally:
        module._parameters[name] = orig


class TorchGeoBackbone(nn.Module):
    """A torchgeo model with satbench's backbone interface; its parameters live under ``model.``."""

    def __init__(self, model: nn.Module, spec: ZooModel, pool: str, res: float) -> None:
        super().__init__()
        self.model = model
        self.spec = spec
        self.layout = TokenLayout(cls=1)
        self.feature_pool = pool
        self.res = float(res)
        self.embed_dim = spec.embed_dim
        self.depth = spec.depth

    @property
    def patch_size(self) -> int:
        return self.spec.patch_size

    @property
    def feature_dim(self) -> int:
        return pool_dim(self.embed_dim, self.feature_pool)

    @property
    def options(self) -> dict[str, Any]:
        import torchgeo

        o: dict[str, Any] = {"family": "torchgeo", "torchgeo_model": self.spec.builder, "pool": self.feature_pool,
                             "tokens": self.layout.describe(), "positions": self.spec.positions,
                             "spectral": dict(self.spec.spectral), "torchgeo": torchgeo.__version__}
        if self.spec.kind == "scalemae":
            o["res"] = self.res
        return o

    def _blocks(self) -> nn.ModuleList:
        return self.model.model.blocks if self.spec.kind == "panopticon" else self.model.blocks

    def _final_norm(self) -> nn.Module:
        if self.spec.kind in ("dofa", "copernicusfm"):
            return self.model.fc_norm
        return self.model.model.norm if self.spec.kind == "panopticon" else self.model.norm

    def max_input_size(self) -> int:
        return MAX_GRID_SIDE * self.patch_size

    def check_input_size(self, height: int, width: int) -> None:
        """One line for a size this model cannot take, before any image is decoded."""
        what = f"torchgeo {self.spec.builder}"
        check_input_grid(what, self.patch_size, height, width, MAX_GRID_SIDE)
        check_whole_patches(what, self.patch_size, height, width)
        if self.spec.kind in ("scalemae", "copernicusfm") and height != width:
            raise InputSizeError(f"{what} needs a square patch grid (torchgeo uses int(sqrt(num_patches))), got "
                                 f"{height} x {width} px")

    def _resized(self, pos_embed: Tensor, grid: tuple[int, int]) -> Tensor:
        from torchgeo.models.copernicusfm import resize_abs_pos_embed

        built = self.spec.img_size // self.patch_size
        return resize_abs_pos_embed(pos_embed, grid, (built, built), num_prefix_tokens=1)

    def _res(self, input_res: Any, batch: int, device: torch.device) -> float:
        if input_res is None:
            return self.res
        res = input_res_tensor(input_res, batch, device)
        if not bool((res == res[0]).all()):
            raise SatbenchError(f"torchgeo {self.spec.builder} takes one ground-resolution ratio per batch (its res "
                                f"attribute), got {sorted(set(res.tolist()))[:4]}")
        return float(res[0])

    def _run(self, x: Tensor, input_res: Any) -> tuple[Tensor, Tensor]:
        """(the torchgeo forward's feature, the final-normed tokens [B, 1 + N, D])."""
        spec, m = self.spec, self.model
        grid = (x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size)
        if input_res is not None and spec.kind != "scalemae":
            raise SatbenchError(f"torchgeo {spec.builder} takes no input_res (its positions are not GSD-scaled)")
        taken: list[Tensor] = []
        hook = self._blocks()[-1].register_forward_hook(lambda _m, _i, out: taken.append(out))
        try:
            if spec.kind == "dofa":
                with _swapped(m, "pos_embed", self._resized(m.pos_embed, grid)):
                    feature = m.forward_features(x, list(RGB_UM))
                tokens = m.fc_norm(taken[-1])
            elif spec.kind == "copernicusfm":
                meta = torch.full((x.shape[0], 4), float("nan"), device=x.device)
                feature = m.forward_features(x, meta, wavelengths=list(RGB_NM), bandwidths=list(RGB_BW_NM),
                                             input_mode="spectral")
                tokens = m.fc_norm(taken[-1])
            elif spec.kind == "panopticon":
                vit = m.model
                ids = torch.tensor(RGB_NM, device=x.device).repeat(x.shape[0], 1)  # a copy: torchgeo writes into it
                with _swapped(vit, "pos_embed", self._resized(vit.pos_embed, grid)):
                    tokens = vit.forward_features({"imgs": x, "chn_ids": ids})
                feature = vit.forward_head(tokens, pre_logits=True)
            else:  # scalemae
                pe = m.patch_embed
                built, res = pe.num_patches, m.res
                pe.num_patches, m.res = grid[0] * grid[1], self._res(input_res, x.shape[0], x.device)
                try:
                    tokens = m.forward_features(x)
                finally:
                    pe.num_patches, m.res = built, res
                feature = m.forward_head(tokens, pre_logits=True)
        finally:
            hook.remove()
        n = 1 + grid[0] * grid[1]
        if tokens.ndim != 3 or tokens.shape[1] != n:
            raise SatbenchError(f"torchgeo {spec.builder}: token layout cls+patches at {x.shape[-2]} x {x.shape[-1]} "
                                f"px means {n} tokens, the model returned {tuple(tokens.shape)}")
        return feature, tokens

    def _pooled(self, feature: Tensor, tokens: Tensor) -> Tensor:
        if self.feature_pool == self.spec.default_pool:
            return feature  # torchgeo's own forward
        return pool_tokens(tokens, self.layout, self.feature_pool, f"torchgeo {self.spec.builder}")

    def forward_features(self, x: Tensor, *, layers: Sequence[int] = (), norm_layers: bool = True,
                         input_res: Any = None) -> BackboneOutput:
        """The pooled feature, the final-normed patch tokens and chosen block outputs (patch tokens)."""
        wanted = sorted(_check_layers(layers, self.depth))
        outs: dict[int, Tensor] = {}
        hooks = [self._blocks()[i].register_forward_hook(lambda _m, _i, out, i=i: outs.__setitem__(i, out))
                 for i in wanted]
        try:
            feature, tokens = self._run(x, input_res)
        finally:
            for h in hooks:
                h.remove()
        norm = self._final_norm()
        taken = {i: (norm(h) if norm_layers else h)[:, 1:] for i, h in outs.items()}
        grid = (x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size)
        return BackboneOutput(cls=self._pooled(feature, tokens), patches=tokens[:, 1:], register=None, layers=taken,
                              grid=grid)

    def forward(self, x: Tensor) -> Tensor:
        """The ``pool`` feature ``[B, D]`` (``[B, 2D]`` for ``cls+avg``)."""
        return self._pooled(*self._run(x, None))


BUILD_OPTIONS = ("family", "torchgeo_model", "pool", "tokens", "positions", "spectral", "torchgeo", "res")


def build(card: Any, **options: Any) -> nn.Module:
    """Build the card's torchgeo model (random init, seeded by the caller; weights come through
    :func:`satbench.models.weights.load_model`)."""
    unknown = sorted(set(options) - set(BUILD_OPTIONS))
    if unknown:
        raise SatbenchError(f"model {card.name}: unknown build options for the torchgeo family: {', '.join(unknown)}")
    spec = zoo_model(card.name)
    tgm = _torchgeo(f"model {card.name}")
    where = f"model {card.name}"
    if options.get("tokens") not in (None, "cls+patches"):
        raise SatbenchError(f"{where}: option tokens {options['tokens']!r} is not this model's token layout cls+patches")
    pool = str(options.get("pool") or spec.default_pool)
    if pool not in spec.pools:
        raise SatbenchError(f"{where}: pool {pool!r} is not one this model gives ({', '.join(spec.pools)}): {spec.why}")
    check_pool(pool, TokenLayout(cls=1), where)
    res = options.get("res", 1.0)
    if spec.kind != "scalemae" and "res" in options:
        raise SatbenchError(f"{where}: option res is Scale-MAE's ground-resolution ratio; this model takes none")
    kwargs: dict[str, Any] = {"num_classes": 0} if spec.kind in ("dofa", "scalemae") else {}  # no classifier head
    model = getattr(tgm, spec.builder)(**kwargs)
    if spec.kind == "scalemae":
        model.patch_embed.strict_img_size = False  # whole patches are checked by check_input_size
        model.res = float(res)
    return TorchGeoBackbone(model.eval(), spec, pool, float(res))


def state_dict_from_checkpoint(obj: Any, card: Any) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """A torchgeo weight file (a flat state dict of torchgeo's keys) -> the backbone's state dict (keys under
    ``model.``): the model's :attr:`ZooModel.dropped` keys dropped and its :attr:`ZooModel.filled` keys, when
    absent, left at init (both counted); every other difference fails the strict load."""
    from satbench.models.checkpoints import nesting_hint

    spec = zoo_model(card.name)
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise WeightsError(f"{card.name}: expected a flat state dict of torchgeo {spec.builder} keys{nesting_hint(obj)}")
    sd = {k: v for k, v in obj.items() if k not in spec.dropped}
    extras: dict[str, Any] = {}
    if len(sd) != len(obj):
        extras["dropped_keys"] = sorted(set(obj) - set(sd))
    prefix = "model.model." if spec.kind == "panopticon" else "model."
    if spec.kind == "panopticon" and "pos_embed" in sd:
        from torchgeo.models.copernicusfm import resize_abs_pos_embed

        _torchgeo(f"model {card.name}")
        n = sd["pos_embed"].shape[1] - 1
        side, built = int(round(n ** 0.5)), spec.img_size // spec.patch_size
        if side * side == n and side != built:
            sd["pos_embed"] = resize_abs_pos_embed(sd["pos_embed"], built, side)
            extras["pos_embed_resized"] = f"{side}x{side}->{built}x{built} (torchgeo's resize_abs_pos_embed)"
    filled = [k for k in spec.filled if k not in sd]
    for k in filled:
        sd[k] = torch.ones(spec.embed_dim) if k.endswith("weight") else torch.zeros(spec.embed_dim)
    if filled:
        extras["filled_at_init"] = filled
    return {prefix + k: v for k, v in sd.items()}, extras


register_family(Family(
    "torchgeo", build, state_dict_from_checkpoint,
    options={"pool": OptionSpec(str, ("cls", "avg", "cls+avg"), None, "default per model (avg: DOFA, Copernicus-FM; "
                                                                        "cls: Scale-MAE, Panopticon)"),
             "res": OptionSpec(float, (), 1.0, "Scale-MAE's ground-resolution ratio (torchgeo's res attribute)"),
             "family": OptionSpec(str, ("torchgeo",)), "torchgeo_model": OptionSpec(str),
             "tokens": OptionSpec(str, (), None, "the token layout (checked, not chosen)"),
             "positions": OptionSpec(str), "spectral": OptionSpec(dict), "torchgeo": OptionSpec(str)},
    input_res_policies=("none",) + INPUT_RES_POLICIES,
    input_res_fn=input_res_for,
    layer_decay_embedding_names=("cls_token", "pos_embed", "patch_embed"),
    no_weight_decay_names=("cls_token", "pos_embed"),
    name_prefix=PREFIX,
    dynamic_card=lambda name: card_for(name),
    naming="torchgeo:<builder> (e.g. torchgeo:dofa_small_patch16_224, torchgeo:scalemae_large_patch16)",
    about="TorchGeo 0.8.1's RGB-capable ViTs: DOFA, Scale-MAE, Panopticon, Copernicus-FM (spectral inputs recorded)",
    extra="torchgeo",
    requires=("torchgeo",),
))

__all__ = ["PREFIX", "REFUSED", "RGB_UM", "RGB_NM", "RGB_BW_NM", "ZOO", "TorchGeoBackbone", "ZooModel", "build",
           "card_for", "state_dict_from_checkpoint", "zoo_model"]
