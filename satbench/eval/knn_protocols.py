"""kNN protocols turned into extraction views: per-scale input sizes, transforms and ``input_res``.

A kNN protocol (``tasks/knn/*.yaml``) names its scales and how each scale becomes an image tensor. This module turns
(protocol, dataset, backbone family) into a list of :class:`ScaleEntry` (one per scale entry, in protocol order, with
the official result key ``"{native}->{target}({final})"``) sharing de-duplicated :class:`~satbench.eval.extract.View`
objects: EuroSAT's 0.25 and 0.125 scales are the same 16-px input, so they share one view (one forward pass) and still
count as two entries in the average.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import transforms as T

from satbench.models.backbones import FAMILIES, get_family
from satbench.models.backbones.base import check_input_size
from satbench.data.scene import SceneDataset
from satbench.data.transforms import knn_input_size, knn_resize_size, knn_transform, knn_transform_spec
from satbench.errors import InputSizeError, ProtocolError
from satbench.io.files import canonical_hash
from satbench.data.normalization import Normalization
from satbench.config.protocols import Protocol
from satbench.eval.extract import View
from satbench.eval.size_rules import DEFAULT_SIZE_RULE, CropAfter, fitted_size, model_patch

#: Scale-MAE's own kNN protocol: the one satbench uses for Scale-MAE by default (``satbench extract``'s input_res).
#: ``scalemae-knn-v1`` (4-decimal EuroSAT statistics only) stays loadable for the records made with it.
SCALEMAE_KNN_PROTOCOL = "scalemae-knn-v2"
TRANSFORMS = ("resize-center-crop", "native-area")


@dataclass
class ScaleEntry:
    """One scale of the protocol: sizes, the official result key and the view that produces its features."""

    scale: float
    target: int  # round(scale * native), before flooring
    size: int  # final input size
    resize: Optional[int]  # short-side resize before the centre crop (resize-center-crop only)
    key: str  # "{native}->{target}({size})", as the official results JSON
    view: View
    protocol_size: Optional[int] = None  # the protocol's size, when size_rule changed it (satbench.eval.size_rules)
    size_rule: Optional[str] = None

    def as_dict(self) -> dict[str, Any]:
        out = {"scale": self.scale, "key": self.key, "target": self.target, "size": self.size,
               "resize": self.resize, "view": self.view.key, "input_res": self.view.input_res}
        if self.protocol_size is not None:
            out.update(protocol_size=self.protocol_size, size_rule=self.size_rule)
        return out


class NativeAreaTransform:
    """Scale-MAE's eval transform: (optional square resize at native size) -> ToTensor -> ``F.interpolate(mode='area')``."""

    def __init__(self, size: int, native_resize: Optional[int] = None) -> None:
        self.size = size
        self.native_resize = native_resize
        self._pre = T.Resize((native_resize, native_resize)) if native_resize else None
        self._to_tensor = T.ToTensor()

    def __call__(self, img: Any) -> torch.Tensor:
        if self._pre is not None:
            img = self._pre(img)
        x = self._to_tensor(img)
        return F.interpolate(x.unsqueeze(0), size=(self.size, self.size), mode="area").squeeze(0)

    def spec(self) -> dict[str, Any]:
        return {"native_resize": self.native_resize, "native_resize_interpolation": "bilinear-antialias"
                if self.native_resize else None, "to_tensor": True, "area_resize": self.size}


def _scales(protocol: Protocol) -> list[float]:
    scales = protocol.get("scales")
    if not isinstance(scales, list) or not scales or not all(isinstance(s, (int, float)) and s > 0 for s in scales):
        raise ProtocolError(f"protocol {protocol.name}: scales must be a non-empty list of positive numbers, got {scales!r}")
    return [float(s) for s in scales]


def protocol_normalization(protocol: Protocol, dataset: SceneDataset,
                           override: Optional[Normalization] = None) -> Normalization:
    """The normalisation a kNN protocol prescribes for ``dataset`` (``override`` wins: ``--normalization``)."""
    if override is not None:
        return override
    rule = protocol.get("normalization", "dataset")
    if rule == "dataset":
        return dataset.normalization
    if rule == "table":
        table = protocol.get("normalization_table") or {}
        key = dataset.protocol_name
        if key not in table:
            raise ProtocolError(f"protocol {protocol.name} has no normalization statistics for {key!r} (it knows "
                                f"{', '.join(sorted(table)) or 'none'}); pass --normalization (a preset or mean=..;std=..)")
        e = table[key]
        if not isinstance(e, dict) or not {"mean", "std"} <= set(e):
            raise ProtocolError(f"protocol {protocol.name}: normalization_table entry {key!r} must be a mapping with "
                                f"mean and std (3 values each), got {e!r}")
        return Normalization(f"{protocol.name}:{key}", e["mean"], e["std"])  # validated on creation
    raise ProtocolError(f"protocol {protocol.name}: normalization must be 'dataset' or 'table', got {rule!r}")


def _family_and_model(backbone: Any, model: Optional[nn.Module]) -> tuple[str, Optional[nn.Module]]:
    """``backbone`` is a family name, or a :class:`~satbench.models.weights.LoadedModel` (whose model is then checked)."""
    if isinstance(backbone, str):
        return backbone, model
    card, module = getattr(backbone, "card", None), getattr(backbone, "model", None)
    if card is None or not isinstance(module, nn.Module):
        raise TypeError(f"build_scale_entries: expected a family name or a LoadedModel, got {type(backbone).__name__}")
    return card.family, model if model is not None else module


def check_entry_sizes(entries: list[ScaleEntry], model: nn.Module, protocol: Protocol, dataset: SceneDataset) -> None:
    """Refuse (before any image is decoded) every scale whose input size ``model`` cannot take."""
    for e in entries:
        try:
            check_input_size(model, e.size, e.size)
        except InputSizeError as exc:
            native = dataset.native_size
            raise InputSizeError(f"protocol {protocol.name}: scale {e.scale:g} of {dataset.name} (native {native} px) "
                                 f"asks for {e.size} x {e.size} px inputs, which the model cannot take: {exc}") from None


def build_scale_entries(protocol: Protocol, dataset: SceneDataset, family: Any,
                        *, model: Optional[nn.Module] = None) -> list[ScaleEntry]:
    """The per-scale entries of ``protocol`` on ``dataset`` for a backbone of ``family`` (views de-duplicated).

    ``family`` is the family name, or the :class:`~satbench.models.weights.LoadedModel` itself; with the model (that, or
    ``model=``) every scale's input size is checked against the backbone's ``check_input_size`` here, before any image
    is decoded (``--scales 3`` on a 256-px dataset is 768 px, beyond SatDINO's official interpolation).
    """
    family, model = _family_and_model(family, model)
    multiple = int(protocol.get("size_multiple", 16))
    if multiple <= 0:
        raise ProtocolError(f"protocol {protocol.name}: size_multiple must be positive, got {multiple}")
    transform = protocol.get("transform", "resize-center-crop")
    if transform not in TRANSFORMS:
        raise ProtocolError(f"protocol {protocol.name}: transform must be one of {', '.join(TRANSFORMS)}, got {transform!r}")
    fam = get_family(family)
    policy = str(protocol.get("input_res", "none"))
    if policy not in fam.input_res_policies:
        takers = [f.name for f in FAMILIES.values() if f.takes_input_res]
        raise ProtocolError(f"protocol {protocol.name} sets input_res {policy!r}, but {fam.name} backbones take no input "
                            f"resolution (only: {', '.join(takers)})")
    ratio_spec = protocol.get("resize_ratio", [256, 224])
    ratio = ratio_spec[0] / ratio_spec[1] if isinstance(ratio_spec, list) else float(ratio_spec)
    interp = protocol.get("interpolation", "bicubic")
    if transform == "resize-center-crop" and interp != "bicubic":
        raise ProtocolError(f"protocol {protocol.name}: only bicubic interpolation is implemented, got {interp!r}")
    native_resize_table = protocol.get("native_resize") or {}
    proto_ds = dataset.protocol_name
    native_resize = native_resize_table.get(proto_ds)
    native = dataset.native_size
    size_rule = str(protocol.get("size_rule", DEFAULT_SIZE_RULE))
    patch = model_patch(model)
    views: dict[str, View] = {}
    out: list[ScaleEntry] = []
    for s in _scales(protocol):
        target, protocol_size = knn_input_size(native, s, multiple)
        size = fitted_size(protocol_size, patch, size_rule, f"protocol {protocol.name}")
        base = protocol_size if size_rule == "crop" else size
        res = fam.input_res(policy, size)
        if transform == "resize-center-crop":
            tf: Any = knn_transform(base, ratio)
            spec = {"kind": "satdino-knn", **knn_transform_spec(base, ratio)}
            resize: Optional[int] = knn_resize_size(base, ratio)
        else:
            tf = NativeAreaTransform(base, native_resize)
            spec = {"kind": "scalemae-knn", **tf.spec()}
            resize = None
        if size != base:
            tf, spec = CropAfter(tf, size), {**spec, "size_rule": "crop", "patch_crop": size}
        vkey = f"{spec['kind']}-{size}" + (f"-res{res:g}" if res is not None else "") + f"-{canonical_hash(spec)[:6]}"
        view = views.setdefault(vkey, View(vkey, tf, spec, res))
        changed = size != protocol_size
        out.append(ScaleEntry(s, target, size, resize, f"{native}->{target}({size})", view,
                              protocol_size if changed else None, size_rule if changed else None))
    if model is not None:
        check_entry_sizes(out, model, protocol, dataset)
    return out
