"""Download throughput against a loopback server and the cost of verifying a 100 MB archive.

Serves a ~100 MB zip (100 members of 1 MiB random bytes, stored) from the tests' scripted loopback server
(tests/support/loopback_http.py, 127.0.0.1 only) and measures:

* plain transport (satbench.io.download.fetch: httpx stream to .part, then md5+sha256, then rename): MB/s of the
  transfer and the verification's share of the whole fetch;
* the same through huggingface_hub (the server answers like the hub's resolve endpoint);
* a connection cut at 50 % and resumed with Range (bytes on the wire vs the file size);
* hashing alone (md5+sha256 in one read, each alone) and the safe unpack of the archive.

The server is Python in the same process (it competes with the client for the GIL and the 2 shared cores),
so the transfer figures are a floor for what satbench's client can do, not a network measurement.

Usage: python bench/bench_download.py [--mb 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from tabulate import tabulate

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
os.environ.pop("SATBENCH_OFFLINE", None)
os.environ.pop("HF_HUB_OFFLINE", None)


def cpu_kind() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores visible)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores visible)"


def make_zip(mb: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for i in range(mb):
            zf.writestr(f"data/part{i:03d}.bin", os.urandom(1 << 20))
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="satbench-bench-dl-"))
    os.environ["SATBENCH_HOME"] = str(work / "home")
    os.environ["HF_HUB_CACHE"] = str(work / "hf")
    import huggingface_hub.constants as hfc

    hfc.HF_HUB_OFFLINE = False
    from support.loopback_http import LoopbackServer
    from satbench.io.archives import extract_archive
    from satbench.data.sources import RemoteFile
    from satbench.io.download import fetch, hash_file

    data = make_zip(args.mb)
    size = len(data)
    md5 = hashlib.md5(data).hexdigest()
    mb = size / 1e6
    rows = []
    commit = "0123456789abcdef0123456789abcdef01234567"
    try:
        with LoopbackServer(commit=commit, chunk=1 << 20) as srv:
            url = srv.add("/files/archive.zip", data)
            hub_path = f"/datasets/bench/archive/resolve/{commit}/archive.zip"
            srv.add(hub_path, data)
            os.environ["HF_ENDPOINT"] = srv.endpoint

            tot, ver = [], []
            for r in range(args.repeats):
                res = fetch(RemoteFile("archive.zip", url, md5=md5), work / f"plain{r}", progress=False)
                tot.append(res.seconds)
                ver.append(res.digests.seconds)
            transfer = [t - v for t, v in zip(tot, ver)]
            rows.append(["plain (httpx) transfer", f"{statistics.median(transfer):.2f} s",
                         f"{mb / statistics.median(transfer):.0f} MB/s", ""])
            rows.append(["plain: verify md5+sha256", f"{statistics.median(ver):.2f} s", f"{mb / statistics.median(ver):.0f} MB/s",
                         f"{100 * statistics.median(ver) / statistics.median(tot):.0f} % of the whole fetch"])

            hub_t = []
            for r in range(args.repeats):
                shutil.rmtree(work / "hf", ignore_errors=True)
                hub_url = f"https://hf.co{hub_path}"
                res = fetch(RemoteFile("archive.zip", hub_url, md5=md5), work / f"hubdl{r}", progress=False)
                assert res.how == "hub" and res.revision == commit
                hub_t.append(res.seconds - res.digests.seconds)
            rows.append(["hub (huggingface_hub) transfer", f"{statistics.median(hub_t):.2f} s",
                         f"{mb / statistics.median(hub_t):.0f} MB/s", "same verify pass afterwards"])

            srv.log.clear()
            srv.fault("/files/archive.zip", "cut", at=size // 2)
            res = fetch(RemoteFile("archive.zip", url, md5=md5), work / "resume", progress=False, backoff=0.01)
            sent = sum(g["sent"] for g in srv.gets())
            rows.append(["cut at 50 % + Range resume", f"{res.seconds:.2f} s", "",
                         f"{len(srv.gets())} GETs, {sent / size:.3f} x the file on the wire"])

        path = work / "plain0" / "archive.zip"
        for label, fn in [("hash md5+sha256 (one read)", lambda: hash_file(path)),
                          ("hash sha256 only", lambda: hashlib.file_digest(open(path, "rb"), "sha256")),
                          ("hash md5 only", lambda: hashlib.file_digest(open(path, "rb"), "md5"))]:
            ts = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
            rows.append([label, f"{statistics.median(ts):.2f} s", f"{mb / statistics.median(ts):.0f} MB/s", ""])
        ts = []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            info = extract_archive(path, work / f"unpacked{r}")
            ts.append(time.perf_counter() - t0)
        rows.append(["safe unpack (inspect + extract)", f"{statistics.median(ts):.2f} s",
                     f"{mb / statistics.median(ts):.0f} MB/s", f"{info.members} members"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"CPU: {cpu_kind()}; Python {platform.python_version()}; archive {size} bytes; median of {args.repeats}")
    print(tabulate(rows, headers=["step", "time", "throughput", "note"]))


if __name__ == "__main__":
    main()
