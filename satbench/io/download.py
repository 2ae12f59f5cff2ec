"""Fetching one remote file and proving it is the right one.

:func:`fetch` turns a :class:`RemoteFile` (a catalog spec's file entry, :class:`satbench.data.download_spec.RemoteFile`)
into a verified local file:

* a file already in the download folder (put there by an earlier run or by hand) is verified and used;
* Hugging Face ``resolve`` URLs go through ``huggingface_hub`` (its standard cache, its own resume; offline
  it answers from the cache);
* any other URL is streamed with ``httpx`` into ``<name>.part`` (resumed with an HTTP ``Range`` request after
  an interruption; retried with exponential back-off on connection errors, timeouts, 429 and 5xx), then
  verified, then renamed to its final name. A file whose checksum does not match is never renamed (the
  ``.part`` is removed: satbench wrote it), so nothing downstream ever sees it.

Checksums: md5 and/or sha256 from the source table. A file with no published checksum gets both computed on
first download and recorded in ``$SATBENCH_HOME/downloads/checksums.json`` (trust on first use, and said so);
later downloads of the same URL are checked against that record.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

from satbench.errors import DataError
from satbench.io.hub_url import HubRef, parse_hub_url  # noqa: F401 (re-exported)
from satbench.io.atomic import atomic_write_json
from satbench.io.bounded import open_regular, read_json_bounded
from satbench.io.network import is_offline, unreachable  # noqa: F401 (is_offline re-exported)
from satbench.runtime.resources import satbench_home



class RemoteFile(Protocol):
    """What :func:`fetch` needs to know of a file (the catalog's :class:`satbench.data.download_spec.RemoteFile`
    has these fields; io stays below data, so it names the shape, not the class)."""

    filename: str
    url: Optional[str]
    md5: Optional[str]
    sha256: Optional[str]
    size: Optional[int]
    checksum_source: str


try:  # huggingface_hub >= 1.x depends on "httpx2" (the same API); older stacks ship "httpx"
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the installed stack
    import httpx  # type: ignore[no-redef]

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
CHUNK = 1 << 20
MAX_ATTEMPTS = 50  # attempts in all for one file, progress or not (bounds a fetch that advances by drips)

class DownloadError(DataError):
    """A file that could not be fetched, or whose checksum does not match."""


@dataclass
class Digests:
    """md5 and sha256 of a file's bytes, and its size."""

    md5: str
    sha256: str
    size: int
    seconds: float = 0.0


@dataclass
class FetchResult:
    """A verified local file and how it was obtained."""

    path: Path
    digests: Digests
    how: str  # "present", "http", "hub"
    url: Optional[str] = None
    revision: Optional[str] = None  # hub commit
    checksum: str = "published"  # "published", "recorded" (trust-on-first-use record), "first-use"
    bytes_transferred: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def downloads_dir() -> Path:
    """Where downloaded archives live: ``$SATBENCH_HOME/downloads/<dataset>/``."""
    return satbench_home() / "downloads"


def hash_file(path: str | os.PathLike, chunk: int = CHUNK) -> Digests:
    """md5 and sha256 of ``path`` in one read."""
    t0 = time.perf_counter()
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    size = 0
    with open_regular(path, "rb") as fh:
        while block := fh.read(chunk):
            md5.update(block)
            sha.update(block)
            size += len(block)
    return Digests(md5.hexdigest(), sha.hexdigest(), size, time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------------
# Trust-on-first-use record of checksums that no source publishes
# ---------------------------------------------------------------------------------------------------
def _tofu_path() -> Path:
    return downloads_dir() / "checksums.json"


def _tofu_load() -> dict[str, Any]:
    p = _tofu_path()
    if not os.path.lexists(p):
        return {}
    data = read_json_bounded(p, what="satbench's record of first-use checksums", limit=16 << 20, error=DownloadError)
    if not isinstance(data, dict):
        raise DownloadError(f"{p} must hold a JSON object")
    return data


def _tofu_key(rf: RemoteFile) -> str:
    return rf.url or f"manual:{rf.filename}"


def expected_checksums(rf: RemoteFile) -> tuple[Optional[str], Optional[str], str]:
    """``(md5, sha256, where)``: the published checksums, else the ones recorded on first use, else none."""
    if rf.md5 or rf.sha256:
        return rf.md5, rf.sha256, "published"
    rec = _tofu_load().get(_tofu_key(rf))
    if isinstance(rec, dict) and (rec.get("md5") or rec.get("sha256")):
        return rec.get("md5"), rec.get("sha256"), "recorded"
    return None, None, "first-use"


def verify(path: Path, rf: RemoteFile, *, log: Callable[[str], None] = print,
           record_first_use: bool = True) -> tuple[Digests, str]:
    """Hash ``path`` and compare with what is expected of ``rf``. Raises on mismatch. Without a published or recorded
    checksum (``where == "first-use"``) the digests are recorded when ``record_first_use`` (else the caller records
    them with :func:`record_first_use_checksum` once the file has proven good, e.g. unpacked and checked)."""
    md5, sha, where = expected_checksums(rf)
    d = hash_file(path)
    bad = []
    if md5 and d.md5 != md5.lower():
        bad.append(f"md5 {d.md5}, expected {md5}")
    if sha and d.sha256 != sha.lower():
        bad.append(f"sha256 {d.sha256}, expected {sha}")
    if bad:
        src = "the published checksum" if where == "published" else f"the checksum recorded on first use in {_tofu_path()}"
        raise DownloadError(f"{path}: checksum mismatch ({'; '.join(bad)}; {src}); the file is not used")
    if where == "first-use" and record_first_use:
        record_first_use_checksum(rf, d, log=log)
    return d, where


def record_first_use_checksum(rf: RemoteFile, d: Digests, *, log: Callable[[str], None] = print) -> None:
    """Record the checksums of a file that has no published one (later copies must match them)."""
    data = _tofu_load()
    data[_tofu_key(rf)] = {"filename": rf.filename, "md5": d.md5, "sha256": d.sha256, "size": d.size,
                           "recorded": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    atomic_write_json(_tofu_path(), data)
    log(f"note: no published checksum is known for {rf.filename}; computed on first use: md5 {d.md5}, "
        f"sha256 {d.sha256} (recorded in {_tofu_path()}; later downloads are checked against it)")


# ---------------------------------------------------------------------------------------------------
# Plain HTTP(S): stream to .part, resume with Range, retry with back-off
# ---------------------------------------------------------------------------------------------------
class _Retryable(Exception):
    def __init__(self, msg: str, retry_after: Optional[float] = None) -> None:
        super().__init__(msg)
        self.retry_after = retry_after


def _retry_after(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, (parsedate_to_datetime(value) - _dt.datetime.now(_dt.timezone.utc)).total_seconds())
        except (TypeError, ValueError):
            return None


_RANGE_RE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def http_download(url: str, part: Path, *, expected_size: Optional[int] = None, retries: int = 5,
                  backoff: float = 1.0, max_backoff: float = 60.0, timeout: float = 60.0, progress: bool = True,
                  desc: str = "", client: Optional[Any] = None, max_attempts: int = MAX_ATTEMPTS) -> dict[str, Any]:
    """Download ``url`` into ``part`` (appending to what is already there), with resume and retries.

    ``retries`` counts consecutive failed attempts that did not advance the file: an attempt counts as progress only
    when ``part`` grew beyond its largest size so far (its high-water mark), so a server that sends a few bytes and
    stalls, or closes early while ignoring ``Range``, ends after ``retries`` retries. ``max_attempts`` bounds the
    whole fetch (progress or not). Errors that cannot heal are not retried: a certificate that fails verification,
    a redirect to a scheme other than http(s), an ``https`` URL redirected to ``http`` (refused before the request is
    sent), too many redirects, and a ``Content-Length`` larger than the free disk space (before any byte is written).
    ``timeout`` is httpx's per-operation timeout (connect, and each read). Returns
    ``{"bytes": transferred this call, "requests": [...], "seconds": ...}``; raises :class:`DownloadError`.
    """
    from tqdm.auto import tqdm

    from satbench.io.download_guard import downgrade, permanent_error, space_shortfall

    def no_downgrade(to: Any) -> None:
        why = downgrade(url, to)
        if why:
            raise DownloadError(f"could not download {url}: {why}")

    own = client is None
    client = client or httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=True,
                                    headers={"User-Agent": "satbench-download"},
                                    event_hooks={"request": [lambda req: no_downgrade(req.url)]})
    stats: dict[str, Any] = {"bytes": 0, "requests": [], "seconds": 0.0}
    t0 = time.perf_counter()
    failures = attempts = 0
    high = part.stat().st_size if part.exists() else 0  # the .part's high-water mark
    bar = tqdm(total=expected_size, initial=0, unit="B", unit_scale=True, unit_divisor=1024, desc=desc or part.name,
               disable=not progress, leave=False)
    try:
        while True:
            attempts += 1
            have = part.stat().st_size if part.exists() else 0
            headers = {"Accept-Encoding": "identity"}
            if have:
                headers["Range"] = f"bytes={have}-"
            got = 0
            try:
                with client.stream("GET", url, headers=headers) as r:
                    stats["requests"].append({"status": r.status_code, "range": headers.get("Range")})
                    for step in (*r.history, r):  # a caller's client has no hook: check the chain it followed
                        no_downgrade(step.url)
                    if r.status_code == 416 and have:
                        total_s = r.headers.get("Content-Range", "").rpartition("/")[2]
                        if total_s.isdigit() and int(total_s) == have:
                            break  # the .part is already complete
                        part.unlink()  # satbench's own .part, longer than the file: start over
                        high = 0
                        continue
                    if r.status_code in RETRY_STATUS:
                        raise _Retryable(f"HTTP {r.status_code}", _retry_after(r.headers.get("Retry-After")))
                    if r.status_code >= 400:
                        raise DownloadError(f"{url}: HTTP {r.status_code} {r.reason_phrase}")
                    mode = "ab"
                    if r.status_code == 206:
                        m = _RANGE_RE.match(r.headers.get("Content-Range", ""))
                        if not m or int(m.group(1)) != have:
                            raise _Retryable(f"server answered range {r.headers.get('Content-Range')!r} to {headers['Range']!r}")
                        total = int(m.group(3)) if m.group(3).isdigit() else None
                    else:  # 200: the server sent the whole file (no Range support, or a fresh start)
                        mode, have = "wb", 0
                        n = r.headers.get("Content-Length")
                        total = int(n) if n and n.isdigit() else None
                    if total is not None:
                        short = space_shortfall(part, total - have, reclaimable=0 if mode == "ab" else
                                                (part.stat().st_size if part.exists() else 0))
                        if short:
                            raise DownloadError(f"could not download {url}: {short}")
                        bar.total = total
                    bar.n = have
                    bar.refresh()
                    with open(part, mode) as fh:
                        for block in r.iter_raw():
                            fh.write(block)
                            got += len(block)
                            bar.update(len(block))
                    size = part.stat().st_size
                    if total is not None and size != total:
                        raise _Retryable(f"connection ended after {size} of {total} bytes")
                stats["bytes"] += got
                break
            except (httpx.TransportError, httpx.TooManyRedirects, _Retryable) as exc:
                stats["bytes"] += got
                why = permanent_error(exc)
                if why:
                    raise DownloadError(f"could not download {url}: {why} (not retried: retrying cannot fix it)") from None
                size = part.stat().st_size if part.exists() else 0
                advanced = size > high
                high = max(high, size)
                failures = 1 if advanced else failures + 1
                if failures > retries:
                    raise DownloadError(f"could not download {url} after {retries} retries ({_short(exc)})") from None
                if attempts >= max_attempts:
                    raise DownloadError(f"could not download {url} in {attempts} attempts (the bound on one fetch; "
                                        f"{size} bytes so far; last: {_short(exc)})") from None
                delay = min(max_backoff, backoff * 2 ** (failures - 1))
                ra = getattr(exc, "retry_after", None)
                if ra is not None:
                    delay = min(max_backoff, max(delay, ra))
                if progress:
                    bar.write(f"{desc or part.name}: {_short(exc)}; retrying in {delay:.1f} s "
                              f"(attempt {failures} of {retries})")
                time.sleep(delay)
    finally:
        bar.close()
        if own:
            client.close()
    stats["seconds"] = time.perf_counter() - t0
    return stats


def _short(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0][:160]}" if msg else type(exc).__name__


# ---------------------------------------------------------------------------------------------------
# Hugging Face hub
# ---------------------------------------------------------------------------------------------------
def hf_cache_dir() -> Optional[str]:
    """The hub cache folder as the environment says *now* (huggingface_hub reads it once at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def hf_endpoint() -> Optional[str]:
    """``$HF_ENDPOINT`` as set now (a mirror), else None (huggingface_hub's default)."""
    return os.environ.get("HF_ENDPOINT") or None


def hub_fetch(ref: HubRef, *, progress: bool = True) -> tuple[Path, str]:
    """Download (or find in the standard cache) one hub file; returns ``(path, commit)``."""
    import huggingface_hub
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    offline = is_offline()
    blocked = None if offline else unreachable(hf_endpoint() or huggingface_hub.constants.ENDPOINT)
    if not progress:
        disable_progress_bars()
    try:
        path = Path(hf_hub_download(repo_id=ref.repo_id, filename=ref.filename, repo_type=ref.repo_type,
                                    revision=ref.revision, cache_dir=hf_cache_dir(), endpoint=hf_endpoint(),
                                    local_files_only=offline or blocked is not None))
    except huggingface_hub.errors.LocalEntryNotFoundError:
        cache = hf_cache_dir() or huggingface_hub.constants.HF_HUB_CACHE
        why = "downloads are off" if offline else blocked or "the hub could not be reached"
        raise DownloadError(f"{_hub_label(ref)} is not in the Hugging Face cache ({cache}) and {why}") from None
    except (huggingface_hub.errors.RepositoryNotFoundError, huggingface_hub.errors.RevisionNotFoundError,
            huggingface_hub.errors.EntryNotFoundError) as exc:
        raise DownloadError(f"{_hub_label(ref)}: {type(exc).__name__} ({_short(exc)})") from None
    except (httpx.HTTPError, huggingface_hub.errors.HfHubHTTPError, OSError, ValueError) as exc:
        raise DownloadError(f"could not download {_hub_label(ref)} ({_short(exc)})") from None
    finally:
        if not progress:
            enable_progress_bars()
    from satbench.io.hub_cache import check_inside_cache

    check_inside_cache(path, hf_cache_dir() or huggingface_hub.constants.HF_HUB_CACHE)
    return path, commit_of(path) or ref.revision


def commit_of(path: Path) -> Optional[str]:
    """The commit of a file in the hub cache layout (``.../snapshots/<commit>/<file>``), else None."""
    parts = path.parts
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "snapshots" and i + 1 < len(parts) and re.fullmatch(r"[0-9a-f]{40}", parts[i + 1]):
            return parts[i + 1]
    return None


def _hub_label(ref: HubRef) -> str:
    return f"hf:{'datasets/' if ref.repo_type == 'dataset' else ''}{ref.repo_id}@{ref.revision}/{ref.filename}"


# ---------------------------------------------------------------------------------------------------
# The one entry point
# ---------------------------------------------------------------------------------------------------
def fetch(rf: RemoteFile, folder: str | os.PathLike, *, progress: bool = True, retries: int = 5, backoff: float = 1.0,
          timeout: float = 60.0, log: Callable[[str], None] = print, client: Optional[Any] = None,
          record_first_use: bool = True) -> FetchResult:
    """A verified local copy of ``rf``: from ``folder`` if already there, else from its URL.

    ``folder`` is where plain downloads go and where a file fetched by hand is looked for first. Raises
    :class:`DownloadError` naming the URL and that place when the file cannot be obtained. ``record_first_use``: see
    :func:`verify`.
    """
    folder = Path(folder)
    dest = folder / rf.filename
    t0 = time.perf_counter()
    if dest.is_file():
        d, where = verify(dest, rf, log=log, record_first_use=record_first_use)
        return FetchResult(dest, d, "present", rf.url, checksum=where, seconds=time.perf_counter() - t0)
    hint = f"download {rf.url} by hand and place it at {dest}" if rf.url else f"place {rf.filename} at {dest}"
    if not rf.url:
        raise DownloadError(f"{rf.filename} is not present and has no public source; {hint}")
    ref = parse_hub_url(rf.url)
    if ref is not None:
        try:
            path, commit = hub_fetch(ref, progress=progress)
        except DownloadError as exc:
            raise DownloadError(f"{exc}; {hint}") from None
        d, where = verify(path, rf, log=log, record_first_use=record_first_use)
        return FetchResult(path, d, "hub", rf.url, revision=commit, checksum=where, seconds=time.perf_counter() - t0)
    if is_offline():
        raise DownloadError(f"{rf.filename} is not present and downloads are off (SATBENCH_OFFLINE/HF_HUB_OFFLINE); {hint}")
    if client is None and (blocked := unreachable(rf.url)):
        raise DownloadError(f"{rf.filename} is not present and {blocked}; {hint}")
    folder.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        stats = http_download(rf.url, part, expected_size=rf.size, retries=retries, backoff=backoff, timeout=timeout,
                              progress=progress, desc=rf.filename, client=client)
    except DownloadError as exc:
        raise DownloadError(f"{exc}; {hint} (a partial download is kept at {part} and resumed next time)"
                            if part.exists() else f"{exc}; {hint}") from None
    try:
        d, where = verify(part, rf, log=log, record_first_use=record_first_use)
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return FetchResult(dest, d, "http", rf.url, checksum=where, bytes_transferred=stats["bytes"],
                       requests=stats["requests"], seconds=time.perf_counter() - t0)


def human_bytes(n: Optional[int]) -> str:
    """``1.2 GB`` style sizes (decimal units)."""
    if n is None:
        return "size unknown"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)
