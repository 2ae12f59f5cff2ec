"""Seeded image corruptions (protocols ``tasks/corruptions/reo-v*.yaml``, default reo-v2): 12 types x 5 severities.

Each corruption is a pure function ``f(image, severity, rng, settings) -> image`` on a decoded native-size
``uint8`` HxWx3 array, applied before the evaluation protocol's resize and crop. ``rng`` comes from
:func:`corruption_rng`, seeded from (split sha256, image index, type, severity, seed) only, so the same image gets
the same corruption on every machine, in every process order and under any sharding. Written with numpy, scipy and
PIL only (no imagecorruptions: it draws from the global ``np.random``; no albumentations).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from satbench.config.settings import between, ge, gt
from satbench.errors import ProtocolError, close_matches

TYPES = ("gaussian_noise", "salt_and_pepper", "gaussian_blur", "motion_blur", "brightness_contrast", "clouds",
         "haze", "data_gaps", "jpeg", "rotate", "scale", "translate")
SEVERITIES = (1, 2, 3, 4, 5)
#: The types that move pixels (a label map would need the same warp); the others change pixel values only.
GEOMETRIC = ("rotate", "scale", "translate")
PHOTOMETRIC = tuple(t for t in TYPES if t not in GEOMETRIC)
#: the corruption protocol used when none is named (reo-v1: the same with imagecorruptions' brightness and
#: contrast constants compounded, a near-uniform white tile at severity 5; still loadable by name)
DEFAULT_PROTOCOL = "reo-v2"

_Pair = tuple[float, float]
_Five = tuple[float, float, float, float, float]
_FivePairs = tuple[_Pair, _Pair, _Pair, _Pair, _Pair]


@dataclass(frozen=True)
class CorruptionSettings:
    """The parameters of severities 1..5 of every type (a corruption protocol's ``params``)."""

    gaussian_noise: _Five = field(metadata=gt(0))
    salt_and_pepper: _Five = field(metadata=between(0, 1, lo_open=True))
    gaussian_blur: _Five = field(metadata=gt(0))
    motion_blur: _FivePairs = field(metadata=gt(0))
    brightness_contrast: _FivePairs = field(metadata=between(0, 1, lo_open=True))
    clouds: _FivePairs = field(metadata=between(0, 1, lo_open=True))
    haze: _Five = field(metadata=between(0, 1, lo_open=True))
    data_gaps: _Five = field(metadata=between(0, 1, lo_open=True, hi_open=True))
    jpeg: tuple[int, int, int, int, int] = field(metadata=between(1, 95))
    rotate: _Five = field(metadata=between(0, 180, lo_open=True))
    scale: _Five = field(metadata=gt(1))
    translate: _Five = field(metadata=between(0, 0.5, lo_open=True, hi_open=True))
    haze_airlight: float = field(default=0.85, metadata=between(0, 1))
    data_gaps_stripe: int = field(default=4, metadata=gt(0))
    seed: int = field(default=0, metadata=ge(0))


def load_corruption_protocol(name_or_path: str = DEFAULT_PROTOCOL) -> tuple[Any, CorruptionSettings]:
    """A corruption protocol (``tasks/corruptions/<name>.yaml`` or a path; hashed and recorded like every other
    protocol) and its typed, checked settings."""
    from satbench.config.protocols import load_protocol

    proto = load_protocol(name_or_path, task="corruptions")
    settings = proto.settings(CorruptionSettings)
    check_settings(settings, f"protocol {proto.name}" + (f" ({proto.path})" if proto.path else ""))
    return proto, settings


def load_corruption_settings(name_or_path: str = DEFAULT_PROTOCOL) -> tuple[CorruptionSettings, str]:
    """A corruption protocol's typed settings and its hash."""
    proto, settings = load_corruption_protocol(name_or_path)
    return settings, proto.hash


def check_settings(settings: CorruptionSettings, where: str) -> None:
    """What the typed loader cannot say: motion-blur radii are whole pixels (imagecorruptions' kernel has
    ``2 radius + 1`` taps)."""
    for sev, (radius, _) in enumerate(settings.motion_blur, start=1):
        if float(radius) != int(radius):
            raise ProtocolError(f"{where}: motion_blur severity {sev} radius must be a whole number of pixels, "
                                f"got {radius!r}")


def check_type_severity(kind: str, severity: int) -> None:
    """Refuse an unknown type or a severity outside 1..5 with one line naming it."""
    if kind not in TYPES:
        raise ProtocolError(f"unknown corruption type {kind!r}{close_matches(kind, list(TYPES))}; "
                            f"known: {', '.join(TYPES)}")
    if not isinstance(severity, int) or isinstance(severity, bool) or severity not in SEVERITIES:
        raise ProtocolError(f"corruption severity must be an integer 1..5, got {severity!r} (type {kind})")


def refuse_geometric(kinds: Any, task: str) -> None:
    """One line naming the geometric types among ``kinds`` for a task with per-pixel labels (``task``), which would
    need its label map warped the same way."""
    geo = [k for k in kinds if k in GEOMETRIC]
    if geo:
        raise ProtocolError(f"--corruptions {' '.join(geo)}: geometric types move the pixels under the label map, "
                            f"which {task} does not warp; use the photometric types ({', '.join(PHOTOMETRIC)})")


def corruption_rng(split_sha256: str, index: int, kind: str, severity: int, seed: int) -> np.random.Generator:
    """The generator of one (image, type, severity): ``default_rng(SeedSequence([...]))`` whose entropy is the split
    file's sha256 (as an integer), the image's index in the split, the first 8 bytes of sha256(type) (big-endian),
    the severity and the seed. Depends on nothing else (no global state, no process rank)."""
    check_type_severity(kind, severity)
    if index < 0 or seed < 0:
        raise ProtocolError(f"corruption index and seed must be >= 0, got index {index}, seed {seed}")
    try:
        split = int(split_sha256, 16)
    except ValueError:
        raise ProtocolError(f"corruption split_sha256 must be a hex digest, got {split_sha256!r}") from None
    code = int.from_bytes(hashlib.sha256(kind.encode()).digest()[:8], "big")
    return np.random.default_rng(np.random.SeedSequence([split, int(index), code, int(severity), int(seed)]))


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ProtocolError(f"a corruption needs a uint8 HxWx3 array, got {getattr(image, 'dtype', type(image))} "
                            f"{getattr(image, 'shape', '')}")
    return image


def _to_u8(x: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] -> uint8, clipped and rounded to the nearest value (imagecorruptions' ``np.uint8``
    truncates instead: its outputs are up to one grey level darker)."""
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _f(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) / 255.0


def gaussian_noise(image: np.ndarray, severity: int, rng: np.random.Generator, s: CorruptionSettings) -> np.ndarray:
    """Additive N(0, sigma^2) per pixel and channel."""
    sigma = s.gaussian_noise[severity - 1]
    return _to_u8(_f(image) + rng.normal(0.0, sigma, image.shape))


def salt_and_pepper(image: np.ndarray, severity: int, rng: np.random.Generator, s: CorruptionSettings) -> np.ndarray:
    """A fraction ``amount`` of the values (per channel, as imagecorruptions) set to 0 or 255, half each."""
    amount = s.salt_and_pepper[severity - 1]
    out = image.copy()
    u = rng.random(image.shape)
    out[u < amount / 2] = 0
    out[(u >= amount / 2) & (u < amount)] = 255
    return out


def gaussian_blur(image: np.ndarray, severity: int, rng: np.random.Generator, s: CorruptionSettings) -> np.ndarray:
    """Gaussian blur of ``sigma`` pixels per channel, as imagecorruptions' ``skimage.filters.gaussian`` call does it
    (scipy's ``gaussian_filter``, nearest-edge borders, kernel truncated at 4 sigma)."""
    from scipy.ndimage import gaussian_filter

    sigma = s.gaussian_blur[severity - 1]
    return _to_u8(gaussian_filter(_f(image), sigma=(sigma, sigma, 0), mode="nearest", truncate=4.0))


def motion_blur(image: np.ndarray, severity: int, rng: np.random.Generator, s: CorruptionSettings) -> np.ndarray:
    """imagecorruptions' ``_motion_blur``: ``2 radius + 1`` copies of the image shifted along a line at an angle
    uniform in [-45, 45] degrees (drawn from ``rng``), copy ``i`` by ``(-ceil(i sin(a) - 1/2), -ceil(i cos(a) - 1/2))``
    pixels with the edge row / column repeated, weighted ``exp(-i^2 / (2 sigma^2))`` (normalised); stops where the
    shift reaches the image size, as imagecorruptions does."""
    radius, sigma = s.motion_blur[severity - 1]
    width = 2 * int(radius) + 1
    weights = np.exp(-np.arange(width, dtype=np.float64) ** 2 / (2.0 * sigma ** 2))
    weights /= weights.sum()
    angle = np.deg2rad(rng.uniform(-45.0, 45.0))
    py, px = width * np.sin(angle), width * np.cos(angle)
    hyp = float(np.hypot(py, px))
    x = _f(image)
    h, w = image.shape[:2]
    out = np.zeros_like(x)
    for i in range(width):
        dy = -int(np.ceil(i * py / hyp - 0.5))
        dx = -int(np.ceil(i * px / hyp - 0.5))
        if abs(dy) >= h or abs(dx) >= w:
            break
        rows = np.clip(np.arange(h) - dy, 0, h - 1)
        cols = np.clip(np.arange(w) - dx, 0, w - 1)
        out += weights[i] * x[rows][:, cols]
    return _to_u8(out)


def brightness_contrast(image: np.ndarray, severity: int, rng: np.random.Generator,
                        s: CorruptionSettings) -> np.ndarray:
    """imagecorruptions' contrast then brightness at the same severity: values scaled by ``factor`` about the
    per-channel mean (clipped to [0, 1]), then ``delta`` added to the HSV value channel (clipped to 1). Hue and
    saturation are kept, so that is each pixel's RGB scaled by ``min(V + delta, 1) / V`` (``V`` = its largest channel;
    a black pixel becomes grey ``delta``), what ``skimage.color.rgb2hsv`` / ``hsv2rgb`` compute, without the round
    trip. Deterministic."""
    delta, factor = s.brightness_contrast[severity - 1]
    x = _f(image)
    mean = x.mean(axis=(0, 1), keepdims=True)
    x = np.clip((x - mean) * factor + mean, 0.0, 1.0)
    v = x.max(axis=2, keepdims=True)
    nv = np.minimum(v + delta, 1.0)
    return _to_u8(np.where(v > 0, x * (nv / np.where(v > 0, v, 1.0)), nv))


def _fractal(shape: tuple[int, int], rng: np.random.Generator, octaves: int = 5) -> np.ndarray:
    """Smooth noise in [0, 1]: random grids of 4, 8, 16... cells, bilinearly upsampled, amplitudes halved."""
    from scipy.ndimage import zoom

    h, w = shape
    out = np.zeros(shape)
    amp = 1.0
    for o in range(octaves):
        cells = 2 ** (o + 2)
        grid = rng.random((cells + 1, cells + 1))
        up = zoom(grid, ((h + 1) / (cells + 1), (w + 1) / (cells + 1)), order=1, mode="nearest")[:h, :w]
        out += amp * up
        amp /= 2
    out -= out.min()
    return out / max(out.max(), 1e-12)


def clouds(image: np.ndarray, severity: int, rng: np.random.Generator, s: CorruptionSettings) -> np.ndarray:
    """Fractal-noise clouds: the densest ``coverage`` of the noise field blended towards white at up to
    ``opacity`` (soft edges)."""
    coverage, opacity = s.clouds[severity - 1]
    noise = _fractal(image.shape[:2], rng)
    thr = np.quantile(noise, 1.0 - coverage)
    alpha = np.clip((noise - thr) / max(1.0 - thr, 1e-12) * 3.0, 0.0, 1.0) * opacity
    x = _f(image)
    return _to_u8(x * (1 - alpha[..., None]) + alpha[..., None])


def haze(image: np.ndarray, severity: int, rng: np.random.Generator, s: CorruptionSettings) -> np.ndarray:
    """The scattering model ``I = J t + A (1 - t)`` with a uniform transmission ``t`` (deterministic)."""
    t = s.haze[severity - 1]
    return _to_u8(_f(image) * t + s.haze_airlight * (1 - t))


def data_gaps(image: np.ndarray, severity: int, rng: np.random.Generator, s: CorruptionSettings) -> np.ndarray:
    """Horizontal stripes of ``data_gaps_stripe`` rows set to 0 until ``fraction`` of the rows are lost (stripe
    positions drawn without replacement from ``rng``)."""
    fraction = s.data_gaps[severity - 1]
    h = image.shape[0]
    w = s.data_gaps_stripe
    n_slots = max(1, h // w)
    n = min(n_slots, int(round(fraction * h / w)))
    out = image.copy()
    for slot in rng.choice(n_slots, size=n, replace=False):
        out[slot * w:(slot + 1) * w] = 0
    return out


def jpeg(image: np.ndarray, severity: int, rng: np.random.Generator, s: CorruptionSettings) -> np.ndarray:
    """A PIL JPEG round trip at ``quality``."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=int(s.jpeg[severity - 1]))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def rotate(image: np.ndarray, severity: int, rng: np.random.Generator, s: CorruptionSettings) -> np.ndarray:
    """Rotation by ``degrees`` about the centre, sign from ``rng``, cubic spline, reflected borders, same size."""
    from scipy.ndimage import rotate as nd_rotate

    deg = s.rotate[severity - 1] * (1 if rng.random() < 0.5 else -1)
    return _to_u8(nd_rotate(_f(image), deg, axes=(1, 0), reshape=False, order=3, mode="reflect"))


def scale(image: np.ndarray, severity: int, rng: np.random.Generator, s: CorruptionSettings) -> np.ndarray:
    """Zoom by ``factor`` about the centre: the central 1/factor crop resized back to the native size (bicubic)."""
    from PIL import Image

    f = s.scale[severity - 1]
    h, w = image.shape[:2]
    ch, cw = max(1, int(round(h / f))), max(1, int(round(w / f)))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = Image.fromarray(image[top:top + ch, left:left + cw])
    return np.asarray(crop.resize((w, h), Image.BICUBIC), dtype=np.uint8).copy()


def translate(image: np.ndarray, severity: int, rng: np.random.Generator, s: CorruptionSettings) -> np.ndarray:
    """A whole-pixel diagonal shift of ``fraction`` of the side on both axes, the signs of each axis from ``rng``,
    reflected borders (misregistration)."""
    frac = s.translate[severity - 1]
    h, w = image.shape[:2]
    sy, sx = rng.choice((-1, 1), size=2)
    dy, dx = int(sy) * int(round(frac * h)), int(sx) * int(round(frac * w))
    pad = ((abs(dy), abs(dy)), (abs(dx), abs(dx)), (0, 0))
    big = np.pad(image, pad, mode="reflect")
    y0, x0 = abs(dy) - dy, abs(dx) - dx
    return big[y0:y0 + h, x0:x0 + w].copy()


CORRUPTIONS: dict[str, Callable[[np.ndarray, int, np.random.Generator, CorruptionSettings], np.ndarray]] = {
    "gaussian_noise": gaussian_noise, "salt_and_pepper": salt_and_pepper, "gaussian_blur": gaussian_blur,
    "motion_blur": motion_blur, "brightness_contrast": brightness_contrast, "clouds": clouds, "haze": haze,
    "data_gaps": data_gaps, "jpeg": jpeg, "rotate": rotate, "scale": scale, "translate": translate,
}
assert tuple(CORRUPTIONS) == TYPES


def corrupt(image: np.ndarray, kind: str, severity: int, rng: np.random.Generator,
            settings: CorruptionSettings) -> np.ndarray:
    """``image`` (uint8 HxWx3) with corruption ``kind`` at ``severity`` (1..5); the input is never modified."""
    check_type_severity(kind, severity)
    out = CORRUPTIONS[kind](_check_image(image), severity, rng, settings)
    assert out.dtype == np.uint8 and out.shape == image.shape
    return out


#: Revision of the corruption functions above, part of every corrupted view's cache key: bump it when a function's
#: pixels change (a new protocol version is then due too), so no cached feature of the old pixels is served.
CODE_REVISION = 1


@dataclass(frozen=True)
class ImageCorruption:
    """One (type, severity) of a corruption protocol on one split: :meth:`apply` corrupts the decoded image of the
    split's ``index``-th entry (the generator of :func:`corruption_rng`). ``protocol_hash`` identifies the parameters
    and the seed; :meth:`spec` is what cache keys and records say about it."""

    kind: str
    severity: int
    settings: CorruptionSettings = field(repr=False)
    split_sha256: str
    protocol_name: str
    protocol_hash: str

    def __post_init__(self) -> None:
        check_type_severity(self.kind, self.severity)

    def spec(self) -> dict[str, Any]:
        return {"protocol": self.protocol_name, "protocol_hash": self.protocol_hash, "type": self.kind,
                "severity": self.severity, "code": CODE_REVISION}

    def apply(self, img: Any, index: int) -> Any:
        """The corrupted copy of ``img`` (a PIL RGB image at native size), as a PIL RGB image."""
        from PIL import Image

        rng = corruption_rng(self.split_sha256, index, self.kind, self.severity, self.settings.seed)
        return Image.fromarray(corrupt(np.asarray(img, dtype=np.uint8), self.kind, self.severity, rng, self.settings))


def parse_severities(values: Any) -> list[int]:
    """Severities from ``[1, 3]``, ``["1..5"]``, ``"2..4"`` or ``"3"``: sorted, distinct, each in 1..5 (one line
    naming the bad value otherwise)."""
    items = values if isinstance(values, (list, tuple)) else [values]
    out: list[int] = []
    for v in items:
        if isinstance(v, bool):
            raise ProtocolError(f"corruption severity must be an integer 1..5 or a range like 1..5, got {v!r}")
        if isinstance(v, int):
            rng = [v]
        elif isinstance(v, str) and v.strip():
            text = v.strip()
            try:
                if ".." in text:
                    lo, hi = (int(x) for x in text.split("..", 1))
                    if lo > hi:
                        raise ValueError
                    rng = list(range(lo, hi + 1))
                else:
                    rng = [int(text)]
            except ValueError:
                raise ProtocolError(f"corruption severities must be integers 1..5 or a range like 1..5, got {v!r}") \
                    from None
        else:
            raise ProtocolError(f"corruption severities must be integers 1..5 or a range like 1..5, got {v!r}")
        for s in rng:
            if s not in SEVERITIES:
                raise ProtocolError(f"corruption severity must be an integer 1..5, got {s!r} (from {v!r})")
        out += rng
    if not out:
        raise ProtocolError("no corruption severity given (expected integers 1..5 or a range like 1..5)")
    if len(set(out)) != len(out):
        raise ProtocolError(f"corruption severities list a value twice: {values!r}")
    return sorted(out)


def parse_types(values: Any) -> list[str]:
    """Corruption types in protocol order; empty / None / ``["all"]`` means all 12. Unknown or repeated names are one
    line naming them."""
    items = [] if values is None else list(values) if isinstance(values, (list, tuple)) else [values]
    if not items or items == ["all"]:
        return list(TYPES)
    for v in items:
        if not isinstance(v, str) or v not in TYPES:
            raise ProtocolError(f"unknown corruption type {v!r}{close_matches(str(v), list(TYPES))}; "
                                f"known: {', '.join(TYPES)} (or all)")
    if len(set(items)) != len(items):
        raise ProtocolError(f"corruption types list a value twice: {items!r}")
    return [t for t in TYPES if t in items]
