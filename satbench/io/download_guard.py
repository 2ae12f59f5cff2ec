"""Checks that decide, during a plain HTTP(S) download, that an error cannot heal (so it is not retried).

Used by :func:`satbench.io.download.http_download`; each check returns a one-line reason, or None when all is well:

* :func:`permanent_error`: a certificate that fails verification, a redirect to a scheme httpx cannot fetch
  (``file://``, ``ftp://``), too many redirects;
* :func:`downgrade`: an ``https://`` URL redirected to ``http://`` (refused before the request is sent);
* :func:`space_shortfall`: an announced ``Content-Length`` larger than the free space of the download folder.
"""

from __future__ import annotations

import os
import shutil
import ssl
from pathlib import Path
from typing import Any, Optional

try:  # the same httpx as satbench.io.download
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the installed stack
    import httpx  # type: ignore[no-redef]


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from (``__cause__`` / ``__context__``), without loops."""
    seen: list[BaseException] = []
    cur: Optional[BaseException] = exc
    while cur is not None and all(cur is not s for s in seen) and len(seen) < 16:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def permanent_error(exc: BaseException) -> Optional[str]:
    """Why retrying ``exc`` cannot help, or None when it may be transient."""
    for e in _chain(exc):
        if isinstance(e, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(e):
            reason = getattr(e, "verify_message", None) or str(e).strip().splitlines()[0][:160]
            return (f"the server's TLS certificate failed verification ({reason}); if a proxy or private CA signs "
                    f"it, point SSL_CERT_FILE at its CA bundle")
    if isinstance(exc, httpx.UnsupportedProtocol):
        return f"a redirect led to a URL satbench does not fetch ({str(exc).strip()[:160]}); only http(s) is followed"
    if isinstance(exc, httpx.TooManyRedirects):
        return f"too many redirects ({str(exc).strip()[:160]})"
    return None


def downgrade(origin: str, to: Any) -> Optional[str]:
    """The refusal when ``origin`` is an ``https`` URL and ``to`` (a URL on its redirect chain) is plain ``http``."""
    if str(origin).lower().startswith("https://") and str(to).lower().startswith("http://"):
        return f"the https URL redirected to plain http ({to}); satbench refuses the downgrade"
    return None


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)  # pragma: no cover


def space_shortfall(part: Path, needed: int, *, reclaimable: int = 0) -> Optional[str]:
    """The refusal when writing ``needed`` more bytes to ``part`` cannot fit in its folder's free space.

    ``reclaimable``: bytes of ``part`` that the write replaces (a fresh start truncates the old ``.part``).
    """
    folder = part.parent if part.parent.exists() else Path(os.getcwd())
    free = shutil.disk_usage(folder).free + max(0, reclaimable)
    if needed > free:
        return (f"the server announces {needed} bytes ({_size(needed)}) but {folder} has only {free} bytes "
                f"({_size(free)}) free; nothing was written")
    return None
