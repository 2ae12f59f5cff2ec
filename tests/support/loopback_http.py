"""A scripted HTTP server on 127.0.0.1 for download tests and the download benchmark (never the network).

It serves in-memory files with ``Range`` support and can be told, per path, to fail the next GET requests:
``status`` (e.g. 503 with ``Retry-After``), ``cut`` (send part of the body, then close the connection) or
``wrong`` (send other bytes of the same length), ``stall`` (send ``at`` bytes, then go silent for ``seconds``),
``announce`` (a ``Content-Length`` of ``length`` bytes, then no body) or ``redirect`` (``code`` to ``location``);
``sticky=True`` keeps a fault for every later GET. ``ignore_range=True`` answers every GET with the whole file
(200), as servers without ``Range`` support do; ``tls=(certfile, keyfile)`` serves HTTPS (see :func:`self_signed`).
Paths of the form ``/[datasets/]<owner>/<repo>/resolve/<rev>/<file>``
also answer like the Hugging Face hub (``X-Repo-Commit`` and ``ETag`` headers on HEAD and GET), so
``huggingface_hub`` can download from it with ``endpoint=`` / ``HF_ENDPOINT``. Every request is logged.
"""

from __future__ import annotations

import hashlib
import shutil
import ssl
import subprocess
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit


def self_signed(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for ``host`` made with the ``openssl`` command: ``(certfile, keyfile)``."""
    if shutil.which("openssl") is None:  # pragma: no cover - depends on the machine
        import pytest

        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={host}",
                    "-addext", f"subjectAltName=IP:{host}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class LoopbackServer:
    """``with LoopbackServer() as srv: srv.add("/f.zip", data); srv.url("/f.zip")``."""

    def __init__(self, commit: str = "0123456789abcdef0123456789abcdef01234567", chunk: int = 1 << 16, *,
                 tls: Optional[tuple[Path, Path]] = None, ignore_range: bool = False) -> None:
        self.tls = tls
        self.ignore_range = ignore_range
        self._stop = threading.Event()
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.log: list[dict[str, Any]] = []
        self.commit = commit
        self.chunk = chunk
        self._lock = threading.Lock()
        self._httpd: Optional[ThreadingHTTPServer] = None

    def add(self, path: str, data: bytes) -> str:
        self.files[path] = data
        return self.url(path)

    def fault(self, path: str, kind: str, **kw: Any) -> None:
        """Queue a fault for the next GET of ``path``: status (code=, retry_after=), cut (at=), wrong."""
        self.faults[path].append({"kind": kind, **kw})

    def url(self, path: str) -> str:
        assert self._httpd is not None
        return f"{self.endpoint}{path}"

    @property
    def endpoint(self) -> str:
        assert self._httpd is not None
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self._httpd.server_address[1]}"

    def gets(self, path: Optional[str] = None) -> list[dict[str, Any]]:
        return [r for r in self.log if r["method"] == "GET" and (path is None or r["path"] == path)]

    def __enter__(self) -> "LoopbackServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                self._serve(head=True)

            def do_GET(self) -> None:
                self._serve(head=False)

            def _serve(self, head: bool) -> None:
                path = urlsplit(self.path).path
                entry = {"method": "HEAD" if head else "GET", "path": path, "range": self.headers.get("Range"),
                         "status": 0, "sent": 0}
                with server._lock:
                    server.log.append(entry)
                    queue = server.faults.get(path) if not head else None
                    fault = (queue[0] if queue[0].get("sticky") else queue.pop(0)) if queue else None
                if fault and fault["kind"] == "redirect":
                    entry["status"] = fault.get("code", 302)
                    self.send_response(entry["status"])
                    self.send_header("Location", fault["location"])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = server.files.get(path)
                if data is None:
                    entry["status"] = 404
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.send_header("X-Repo-Commit", server.commit)
                    self.end_headers()
                    return
                if fault and fault["kind"] == "status":
                    entry["status"] = fault.get("code", 503)
                    self.send_response(entry["status"])
                    if fault.get("retry_after") is not None:
                        self.send_header("Retry-After", str(fault["retry_after"]))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = 0
                rng = None if server.ignore_range else self.headers.get("Range")
                if rng and rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[len("bytes="):-1])
                if start >= len(data) and rng:
                    entry["status"] = 416
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = data[start:]
                if fault and fault["kind"] == "wrong":
                    body = bytes(b ^ 0xFF for b in body)
                entry["status"] = 206 if rng else 200
                self.send_response(entry["status"])
                announced = fault["length"] if fault and fault["kind"] == "announce" else len(body)
                self.send_header("Content-Length", str(announced))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("X-Repo-Commit", server.commit)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if head:
                    return
                limit = fault["at"] if fault and fault["kind"] in ("cut", "stall") else len(body)
                if fault and fault["kind"] == "announce":
                    limit = 0
                view = memoryview(body)[:limit]
                try:
                    for i in range(0, len(view), server.chunk):
                        self.wfile.write(view[i:i + server.chunk])
                        entry["sent"] += len(view[i:i + server.chunk])
                    self.wfile.flush()
                    if fault and fault["kind"] == "stall":
                        server._stop.wait(fault.get("seconds", 30.0))
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    pass
                if limit < len(body):
                    self.close_connection = True

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(self.tls[0]), str(self.tls[1]))
            self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._httpd is not None
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
