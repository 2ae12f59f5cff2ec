"""Is the network there? Decided at once, never waited for.

``SATBENCH_OFFLINE`` / ``HF_HUB_OFFLINE`` switch downloads off. Otherwise, before the first download from a host,
one short TCP connection is tried (``$SATBENCH_CONNECT_TIMEOUT`` seconds, default 3; DNS failures are immediate): a
host that cannot be reached is reported at once instead of after huggingface_hub's retries (29 s on a machine with no
network). The answer is kept for the rest of the process.
"""

from __future__ import annotations

import os
import socket
from typing import Optional
from urllib.parse import urlsplit

OFFLINE_VARS = ("SATBENCH_OFFLINE", "HF_HUB_OFFLINE")
DEFAULT_HUB = "https://huggingface.co"
_TRUE = ("1", "true", "yes", "on")
_REACHED: dict[tuple[str, int], Optional[str]] = {}


def offline_var() -> Optional[str]:
    """The variable that switches downloads off (``SATBENCH_OFFLINE`` or ``HF_HUB_OFFLINE``), or None."""
    return next((v for v in OFFLINE_VARS if os.environ.get(v, "").strip().lower() in _TRUE), None)


def is_offline() -> bool:
    """True when satbench may not use the network (``SATBENCH_OFFLINE`` or ``HF_HUB_OFFLINE`` set)."""
    return offline_var() is not None


def connect_timeout() -> float:
    """Seconds of the one connection try (``$SATBENCH_CONNECT_TIMEOUT``, default 3)."""
    try:
        value = float(os.environ.get("SATBENCH_CONNECT_TIMEOUT", "3"))
    except ValueError:
        return 3.0
    return value if value > 0 else 3.0


def unreachable(url: str) -> Optional[str]:
    """Why ``url``'s host cannot be reached now (``"huggingface.co cannot be reached: ..."``), or None when one TCP
    connection to it succeeds. One short try per host and process, no retries."""
    parts = urlsplit(url if "://" in url else f"https://{url}")
    host = parts.hostname or ""
    port = parts.port or (80 if parts.scheme == "http" else 443)
    key = (host, port)
    if key not in _REACHED:
        try:
            with socket.create_connection(key, timeout=connect_timeout()):
                _REACHED[key] = None
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            if isinstance(exc, (socket.timeout, TimeoutError)):
                why = f"no answer in {connect_timeout():g} s"
            _REACHED[key] = f"{host} cannot be reached ({why})"
    return _REACHED[key]


def download_blocker(url: str) -> Optional[str]:
    """Why a download from ``url`` cannot happen now: downloads switched off, or the host unreachable; else None."""
    var = offline_var()
    if var is not None:
        return f"downloads are off ({var})"
    return unreachable(url)


def hub_endpoint() -> str:
    """The Hugging Face endpoint in use (``$HF_ENDPOINT`` or huggingface.co)."""
    return os.environ.get("HF_ENDPOINT") or DEFAULT_HUB
