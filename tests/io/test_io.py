"""Files and folders satbench did not write, and the folders it owns: output-folder locks, stale temp files, a full
disk, hostile results folders, and bounded YAML / JSON (satbench.io.locking, satbench.io.atomic, satbench.records.results,
satbench.config.yamlio). Where a hang is the failure mode the test runs a subprocess with a timeout."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from satbench.cli.app import main
from satbench.errors import SatbenchError
from support.locks import lock_holder
from support.paths import REPO

CARDS = REPO / "tests" / "fixtures" / "cards"
UCM = REPO / "satbench" / "data" / "bundled" / "ucm-mini"
DEAD_PID = 999_999_999  # above any pid_max

from bad_inputs.cases_io import BAD_RECORDS, _record  # noqa: E402


@pytest.fixture(autouse=True)
def _test_cards(monkeypatch):
    monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(CARDS))


def _env(**extra: str) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "SATBENCH_OFFLINE": "1",
            "SATBENCH_MODEL_CARDS": str(CARDS), "PYTHONUNBUFFERED": "1", **extra}


def _lines(err: str) -> list[str]:
    return [ln for ln in err.strip().splitlines() if ln.strip() and "%|" not in ln]


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _images(root: Path, n: int = 8) -> Path:
    d = root / "imgs"
    d.mkdir()
    for f in sorted(UCM.rglob("*.jpg"))[:n]:
        shutil.copy(f, d / f.name)
    return d


PRETRAIN_SETS = ["depth=1", "batch_size_per_gpu=4", "warmup_epochs=0", "warmup_teacher_temp_epochs=0",
                 "global_crops_size=32", "local_crops_size=16", "local_crops_number=2", "out_dim=64",
                 "head_hidden_dim=32", "head_bottleneck_dim=16", "saveckp_freq=0", "num_workers=0"]


def _pretrain_argv(data: Path, out: Path, epochs: int = 1) -> list[str]:
    argv = ["pretrain", "--config", "satdino-demo-tiny", "--data", str(data), "--gsd", "0.3", "--no-progress",
            "--output", str(out)]
    for s in PRETRAIN_SETS + [f"epochs={epochs}"]:
        argv += ["--set", s]
    return argv


# ---------------------------------------------------------------------------------------------------------------------
# Output-folder locks
# ---------------------------------------------------------------------------------------------------------------------
def test_second_pretrain_on_the_same_output_fails_at_once_naming_the_first(tmp_path):
    """Two real `satbench pretrain` runs on one --output: the second exits at once with one line naming the folder and
    the first run (pid, host, command); the first is untouched and, when killed, leaves a stale lock that the next
    run names and takes over."""
    data, out = _images(tmp_path), tmp_path / "out"
    argv = [sys.executable, "-m", "satbench.cli", *_pretrain_argv(data, out, epochs=1000)]
    first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        lock = out / ".satbench.lock"
        t0 = time.monotonic()
        while not (lock.is_file() and f'"pid": {first.pid}' in lock.read_text()):
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() - t0 < 120, "the first run never took the lock"
            time.sleep(0.05)
        t1 = time.monotonic()
        second = subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=120)
        took = time.monotonic() - t1
        lines = _lines(second.stderr)
        assert second.returncode != 0 and len(lines) == 1, second.stderr
        assert lines[0].startswith(f"satbench: error: output folder {out} is in use by another satbench run: "
                                   f"pid {first.pid} on host {socket.gethostname()} since "), lines
        assert "satbench pretrain" in lines[0] and "--output" in lines[0]
        assert first.poll() is None, "the first run must go on"
        assert took < 60, f"the second run took {took:.0f} s to fail"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert (out / ".satbench.lock").is_file()  # SIGKILL: the kernel dropped the lock, the file names a dead run
    from satbench.io.locking import output_lock

    import io
    err = io.StringIO()
    with contextlib.redirect_stderr(err), output_lock(out, "test") as lk:
        assert lk.held and lk.stale["pid"] == first.pid
    assert re.search(rf"warning: output folder {re.escape(str(out))}: taking over the stale lock of satbench run "
                     rf"pid {first.pid} on host .*which is no longer running", err.getvalue()), err.getvalue()
    assert not (out / ".satbench.lock").exists()


LOCKED_COMMANDS = {
    "pretrain": lambda d, res: ["pretrain", "--config", "satdino-demo-tiny", "--output", d, "--no-progress"],
    "demo": lambda d, res: ["demo", "--output", d, "--results-dir", res, "--no-progress"],
    "linear": lambda d, res: ["run", "--task", "linear", "--model", "satdino-test-tiny", "--weights", "random",
                              "--dataset", "ucm-mini", "--epochs", "1", "--results-dir", res, "--no-progress",
                              "--output-dir", d],
    "finetune": lambda d, res: ["run", "--task", "finetune", "--model", "satdino-test-tiny", "--weights", "random",
                                "--dataset", "ucm-mini", "--epochs", "1", "--results-dir", res, "--no-progress",
                                "--output-dir", d],
    "segmentation": lambda d, res: ["run", "--task", "segmentation", "--model", "satdino-test-tiny", "--weights",
                                    "random", "--dataset", str(d.parent / "no_such_tiles"), "--crop", "224",
                                    "--results-dir", res, "--no-progress", "--work-dir", d],
}


@pytest.mark.parametrize("command", sorted(LOCKED_COMMANDS))
def test_every_command_owning_an_output_folder_refuses_a_locked_one(command, tmp_path, capsys, monkeypatch):
    """pretrain --output, demo --output, linear/finetune --output-dir, segmentation --work-dir: one line naming the
    folder and the holder, before any model is loaded or any file is written."""
    if command == "segmentation":
        pytest.importorskip("mmseg")
    import satbench.models.weights as sw

    def must_not_load(*a, **k):
        raise AssertionError("the model was loaded although the output folder is locked")

    monkeypatch.setattr(sw, "load_model", must_not_load)
    folder = tmp_path / "out"
    folder.mkdir()
    argv = [str(a) for a in LOCKED_COMMANDS[command](folder, tmp_path / "res")]
    with lock_holder(folder) as pid:
        code = main(argv)
        lines = _lines(capsys.readouterr().err)
        assert code != 0 and len(lines) == 1, lines
        assert f"output folder {folder} is in use by another satbench run: pid {pid} on host" in lines[0], lines
        assert sorted(p.name for p in folder.iterdir()) == [".satbench.lock"]
    assert not list(folder.iterdir()), "the holder removes its lock file when it ends"


def test_the_default_linear_output_dir_is_locked_too(tmp_path):
    """train_classifier (used with the default $SATBENCH_HOME/runs/... folder as well) holds the lock itself."""
    from satbench.eval.linear import train_classifier
    from satbench.io.locking import OutputLockedError

    folder = tmp_path / "runs" / "linear" / "x"
    folder.mkdir(parents=True)
    with lock_holder(folder) as pid:
        with pytest.raises(OutputLockedError, match=rf"in use by another satbench run: pid {pid} "):
            train_classifier(None, [], [], 2, None, output_dir=folder)  # refused before the arguments are used


def test_stale_lock_of_a_dead_run_is_named_and_taken_over(tmp_path, capsys):
    from satbench.io.locking import LOCK_NAME, output_lock

    folder = tmp_path / "out"
    folder.mkdir()
    dead = _dead_pid()
    (folder / LOCK_NAME).write_text(json.dumps({"satbench_lock": 1, "pid": dead, "host": socket.gethostname(),
                                                "started": "2026-01-01T00:00:00Z",
                                                "command": "satbench pretrain --output out"}))
    with output_lock(folder, "test") as lk:
        info = json.loads((folder / LOCK_NAME).read_text())
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname() and lk.stale["pid"] == dead
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and (
        f"satbench: warning: output folder {folder}: taking over the stale lock of satbench run pid {dead} on host "
        f"{socket.gethostname()} since 2026-01-01T00:00:00Z (satbench pretrain --output out), which is no longer "
        f"running") in err, err
    assert not (folder / LOCK_NAME).exists() and folder.is_dir()


def test_lock_is_reentrant_and_a_failed_run_leaves_no_folder_behind(tmp_path, capsys, monkeypatch):
    from satbench.io.locking import output_lock

    with output_lock(tmp_path / "a", "outer"), output_lock(tmp_path / "a", "inner") as inner:
        assert not inner.held  # the outer lock of this process covers it
        assert (tmp_path / "a" / ".satbench.lock").is_file()
    assert not (tmp_path / "a").exists(), "a folder the run created and left empty is removed"
    out = tmp_path / "new" / "deeper"
    assert main(["pretrain", "--config", "satdino-demo-tiny", "--set", "epochs=many", "--output", str(out)]) != 0
    assert "epochs must be int" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "mine.txt").write_text("x")
    assert main(["pretrain", "--config", "satdino-demo-tiny", "--set", "epochs=many", "--output", str(tmp_path / "kept")]) != 0
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["mine.txt"]


def test_other_ranks_never_take_the_lock(tmp_path, monkeypatch):
    from satbench.io.locking import output_lock

    monkeypatch.setenv("RANK", "1")
    with output_lock(tmp_path / "r1", "rank 1") as lk:
        assert not lk.held
    assert not (tmp_path / "r1").exists()


@pytest.mark.slow
def test_torchrun_job_refused_by_a_locked_folder_ends_without_hanging(tmp_path):
    """torchrun with 2 processes: rank 0 is refused and exits; torchrun ends rank 1 (waiting for rank 0): no hang.
    Then the same job on a free folder trains (only rank 0 takes the lock; rank 1 never tries)."""
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not installed")
    data, out = _images(tmp_path), tmp_path / "out"
    out.mkdir()
    argv = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "satbench.cli",
            *_pretrain_argv(data, out, epochs=1), "--device", "cpu"]
    with lock_holder(out) as pid:
        t0 = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=300)
        took = time.monotonic() - t0
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"satbench: error: output folder {out} is in use by another satbench run: pid {pid}" in text, text[-3000:]
    assert took < 240, f"took {took:.0f} s"
    proc = subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert (out / "teacher.pth").is_file() and not (out / ".satbench.lock").exists()


# ---------------------------------------------------------------------------------------------------------------------
# Temp files
# ---------------------------------------------------------------------------------------------------------------------
def test_stale_temp_files_of_dead_writers_are_removed_at_the_next_write(tmp_path):
    from satbench.io.atomic import LEGACY_TEMP_MIN_AGE_S, atomic_write_json, host_tag

    d = tmp_path / "res"
    d.mkdir()
    host, dead = host_tag(), _dead_pid()
    live_proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"keep")
    old = time.time() - LEGACY_TEMP_MIN_AGE_S - 60
    files = {
        "dead": (d / f".r1.json.sbtmp-{host}-{dead}-abcd1234.tmp", False),
        "dead-other-target": (d / f".ckpt.pth.sbtmp-{host}-{dead}-x_yz5678.tmp", False),
        "live": (d / f".r2.json.sbtmp-{host}-{live_proc.pid}-abcd1234.tmp", True),
        "mine": (d / f".r3.json.sbtmp-{host}-{os.getpid()}-abcd1234.tmp", True),
        "other-host": (d / f".r4.json.sbtmp-elsewhere-{dead}-abcd1234.tmp", True),
        "same-name-other-pid-namespace": (d / f".r6.json.sbtmp-{host.split('-')[0][:23]}-f0000999-{dead}-abcd1234.tmp",
                                          True),
        "legacy-old-same-target": (d / ".target.json.k2j4h5g6.tmp", False),
        "legacy-recent-same-target": (d / ".target.json.a1b2c3d4.tmp", True),
        "legacy-old-other-target": (d / ".other.json.k2j4h5g6.tmp", True),
        "foreign": (d / ".r1.json.sbtmp-notes.tmp", True),
        "plain": (d / "data.tmp", True),
    }
    try:
        for name, (p, _) in files.items():
            p.write_bytes(b"\0" * 100)
            if name.startswith("legacy-old"):
                os.utime(p, (old, old))
        link = d / f".r5.json.sbtmp-{host}-{dead}-abcd1234.tmp"
        link.symlink_to(outside)  # a dead writer's name, but a symlink: not satbench's temp file
        atomic_write_json(d / "target.json", {"x": 1})
        for name, (p, keep) in files.items():
            assert p.exists() == keep, name
        assert link.is_symlink() and outside.read_bytes() == b"keep"
        assert json.loads((d / "target.json").read_text()) == {"x": 1}
        assert not [p for p in d.iterdir() if p.name.startswith(".target.json.sbtmp-")], "own temp file published"
    finally:
        live_proc.stdin.close()
        live_proc.wait()


def test_temp_file_of_a_killed_writer_is_cleaned_by_the_next_write(tmp_path):
    """A real write SIGKILLed midway leaves a temp file of satbench's pattern; the next write in the folder removes it."""
    d = tmp_path / "ck"
    code = ("import sys, time\nfrom satbench.io.atomic import atomic_write\n"
            "def w(fh):\n    fh.write(b'x' * (4 << 20)); fh.flush(); print('writing', flush=True); time.sleep(600)\n"
            "atomic_write(sys.argv[1], w)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(d / "checkpoint.pth")], stdout=subprocess.PIPE, text=True,
                         env=_env())
    assert p.stdout.readline().strip() == "writing"
    p.send_signal(signal.SIGKILL)
    p.wait()
    orphans = [x for x in d.iterdir() if x.name.endswith(".tmp")]
    assert len(orphans) == 1 and orphans[0].stat().st_size == 4 << 20 and f"-{p.pid}-" in orphans[0].name
    assert not (d / "checkpoint.pth").exists()
    from satbench.io.atomic import atomic_write_bytes

    atomic_write_bytes(d / "log.txt", b"next write")
    assert sorted(x.name for x in d.iterdir()) == ["log.txt"]


# ---------------------------------------------------------------------------------------------------------------------
# Full disk
# ---------------------------------------------------------------------------------------------------------------------
class _FullDisk:
    """A file object that accepts ``limit`` bytes, then fails every write with ``err`` (as a full disk does)."""

    def __init__(self, fh, limit: int, err: int) -> None:
        self._fh, self.left, self.err = fh, limit, err

    def write(self, data) -> int:
        n = len(memoryview(data).cast("B"))
        if n > self.left:
            raise OSError(self.err, os.strerror(self.err))
        self.left -= n
        return self._fh.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()

    def __getattr__(self, name):
        return getattr(self._fh, name)


@pytest.fixture
def full_disk(monkeypatch, tmp_path):
    """Every file opened with ``os.fdopen`` under ``tmp_path`` fails after 2000 bytes (file-object level injection)."""
    real = os.fdopen
    state = {"err": errno.ENOSPC}

    def fdopen(fd, *a, **k):
        fh = real(fd, *a, **k)
        try:
            where = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return fh
        return _FullDisk(fh, 2000, state["err"]) if where.startswith(str(tmp_path)) else fh

    monkeypatch.setattr(os, "fdopen", fdopen)
    return state


def _tiny_model():
    from satbench.models.registry import get_card
    from satbench.models.weights import load_model

    return load_model(get_card("satdino-test-tiny"), "random")


WRITERS = {
    "export-pth": lambda out, m: __import__("satbench.models.export", fromlist=["x"]).export_weights(m, out / "e.pth", "pth"),
    "export-safetensors": lambda out, m: __import__("satbench.models.export", fromlist=["x"]).export_weights(
        m, out / "e.safetensors", "safetensors"),
    "pretrain-checkpoint": lambda out, m: __import__("satbench.pretrain.checkpoint", fromlist=["x"]).save_checkpoint(
        {"student": m.model.state_dict(), "epoch": 1}, out, 1, 1),
    "pretrain-teacher": lambda out, m: __import__("satbench.pretrain.checkpoint", fromlist=["x"]).export_teacher(
        {f"backbone.{k}": v for k, v in m.model.state_dict().items()}, out, {"epochs_done": 1}),
    "linear-checkpoint": lambda out, m: __import__("satbench.io.atomic", fromlist=["x"]).atomic_torch_save(
        {"format": "satbench.linear/1", "teacher": m.model.state_dict()}, out / "checkpoint.pth"),
    "record": lambda out, m: __import__("satbench.records.results", fromlist=["x"]).write_record(
        _record(metrics={"big": list(range(2000))}), out),
}


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EDQUOT, errno.EFBIG], ids=["ENOSPC", "EDQUOT", "EFBIG"])
@pytest.mark.parametrize("what", sorted(WRITERS))
def test_full_disk_is_one_line_naming_the_file_and_leaves_nothing(what, err, tmp_path, full_disk):
    from satbench.errors import ResultsError

    model = _tiny_model()
    out = tmp_path / "out"
    full_disk["err"] = err
    with pytest.raises(ResultsError) as exc:
        WRITERS[what](out, model)
    msg = str(exc.value)
    assert "\n" not in msg and "inline_container" not in msg and "enforce fail" not in msg
    assert re.fullmatch(rf"cannot write {re.escape(str(out))}/\S+: no space left on device( \(.+\))?", msg), msg
    assert not list(out.iterdir()), f"left behind: {sorted(p.name for p in out.iterdir())}"


def test_full_disk_during_export_through_the_cli(tmp_path, full_disk, capsys, monkeypatch):
    code = main(["export", "--model", "satdino-test-tiny", "--weights", "random", "--format", "pth",
                 "--output", str(tmp_path / "e.pth")])
    lines = _lines(capsys.readouterr().err)
    assert code != 0 and lines == [f"satbench: error: cannot write {tmp_path / 'e.pth'}: no space left on device"], lines
    assert not list(tmp_path.glob("*e.pth*"))


@pytest.mark.slow
def test_file_size_limit_really_exceeded_is_one_line(tmp_path):
    """No injection: RLIMIT_FSIZE makes the kernel refuse the write (EFBIG) inside torch.save."""
    import resource

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    out = tmp_path / "e.pth"
    proc = subprocess.run([sys.executable, "-m", "satbench.cli", "export", "--model", "satdino-test-tiny", "--weights",
                           "random", "--format", "pth", "--output", str(out)], capture_output=True, text=True,
                          env=_env(), timeout=300, preexec_fn=limit)
    lines = _lines(proc.stderr)
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"satbench: error: cannot write {out}: no space left on device"), lines
    assert not list(tmp_path.iterdir())


def _tmpfs_available() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null || "
                            "mount -t tmpfs -o size=64k tmpfs /tmp"], capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _tmpfs_available(), reason="cannot mount a tmpfs in a private namespace here (unshare -rm)")
@pytest.mark.parametrize("command", ["export", "pretrain"])
def test_really_full_disk_on_a_tiny_tmpfs_is_one_line(command, tmp_path):
    """A real 512 KiB tmpfs (private mount namespace): torch.save hits ENOSPC for real."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if command == "export":
        target = mnt / "e.pth"
        argv = ["export", "--model", "satdino-test-tiny", "--weights", "random", "--format", "pth", "--output", str(target)]
    else:
        target = mnt / "run"
        argv = _pretrain_argv(_images(tmp_path), target) + ["--set", "depth=4", "--set", "out_dim=4096"]
    script = (f"mount -t tmpfs -o size=512k tmpfs {mnt} && {sys.executable} -m satbench.cli "
              + " ".join(f"'{a}'" for a in argv) + f"; rc=$?; ls -A {mnt} {target if command != 'export' else ''} >&2;"
              " exit $rc")
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=_env(),
                          timeout=600)
    lines = _lines(proc.stderr)
    errors = [ln for ln in lines if ln.startswith("satbench:")]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-3000:]
    assert re.match(rf"satbench: error: cannot write {re.escape(str(mnt))}/\S+: no space left on device$", errors[0])
    listing = [ln for ln in lines if not ln.startswith("satbench:")]
    assert not any(".tmp" in ln for ln in listing), listing  # no temp file left
    assert not any(ln.endswith(".pth") and "log" not in ln for ln in listing if command == "export"), listing


# ---------------------------------------------------------------------------------------------------------------------
# Results folders
# ---------------------------------------------------------------------------------------------------------------------
def _leaderboard(folder: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "satbench.cli", "leaderboard", "--results-dir", str(folder), *extra],
                          capture_output=True, text=True, env=_env(), timeout=120)


def test_leaderboard_never_blocks_on_a_fifo_nor_reads_dev_zero(tmp_path):
    d = tmp_path / "res"
    d.mkdir()
    (d / "good.json").write_text(json.dumps(_record()))
    os.mkfifo(d / "fifo.json")
    (d / "zero.json").symlink_to("/dev/zero")
    (d / "dev.json").symlink_to("/dev/urandom")
    with open(d / "huge.json", "wb") as fh:
        fh.truncate(64 << 20)
    proc = _leaderboard(d)  # before the fix: blocks forever on fifo.json (the timeout fails the test)
    assert proc.returncode == 0, proc.stderr
    warnings = [ln for ln in _lines(proc.stderr) if ln.startswith("satbench: warning")]
    assert warnings == [
        f"satbench: warning: skipped {d / 'dev.json'}: is a symbolic link (not followed)",
        f"satbench: warning: skipped {d / 'fifo.json'}: is a FIFO (named pipe), not a regular file (not read)",
        f"satbench: warning: skipped {d / 'huge.json'}: is 64 MiB, larger than the 8 MiB allowed",
        f"satbench: warning: skipped {d / 'zero.json'}: is a symbolic link (not followed)",
    ], warnings
    assert f"1 records in {d}" in proc.stderr and "satdino-test-tiny" in proc.stdout


@pytest.mark.parametrize("variant", sorted(BAD_RECORDS))
def test_wrong_typed_record_is_skipped_with_a_warning_naming_file_and_field(variant, tmp_path, capsys):
    from satbench.records.results import read_records

    d = tmp_path / "res"
    d.mkdir()
    (d / "a_good.json").write_text(json.dumps(_record()))
    bad = d / f"b_{variant}.json"
    bad.write_text(json.dumps(BAD_RECORDS[variant]))
    recs = read_records(d)
    assert [Path(r["_path"]).name for r in recs] == ["a_good.json"]
    err = _lines(capsys.readouterr().err)
    field = {"dataset-list": "dataset must be an object, got a list",
             "summary-string": "summary must be an object, got a string",
             "top1-string": "summary.top1_avg must be a number, got a string",
             "no-provenance": "record lacks required field(s) provenance",
             "model-int": "model must be a non-empty string, got an integer 5",
             "scale-key-text": "summary.top1_per_scale key 'abc' is not a scale",
             "weights-list": "weights must be an object, got a list",
             "overrides-list": "protocol.overrides must be an object or null, got a list",
             "date-number": "provenance.date must be a string, got an integer"}[variant]
    assert len(err) == 1 and err[0].startswith(f"satbench: warning: skipped {bad}: {field}"), err
    assert main(["leaderboard", "--results-dir", str(d)]) == 0  # the tables render from the good record
    out = capsys.readouterr()
    warnings = [ln for ln in _lines(out.err) if ln.startswith("satbench: warning")]
    assert f"1 records in {d}" in out.err and len(warnings) == 1  # status lines go to stderr; stdout is the document
    assert out.out.startswith("### ")


@pytest.mark.parametrize("content,why", [
    ('{"schema": "satbench.record/1", "task": "knn"', "is not readable JSON"),
    ("[" * 100_000 + "]" * 100_000, "is not readable JSON: nested deeper than 64 levels"),
    (json.dumps(_record()).replace("50.0", "NaN", 1), "is not readable JSON (non-finite number NaN)"),
    (json.dumps(_record()).replace("50.0", "-Infinity", 1), "is not readable JSON (non-finite number -Infinity)"),
    (json.dumps(_record()).replace("50.0", "1e400", 1), "is not readable JSON (number 1e400 overflows to inf)"),
    (json.dumps(_record()).replace("50.0", "9" * 5000, 1), "is not readable JSON"),
    ('{"x": 1}', 'not a satbench record (no "schema": "satbench.record/1")'),
])
def test_unreadable_json_in_a_results_folder_is_skipped_with_a_warning(content, why, tmp_path, capsys):
    from satbench.records.results import read_records

    (tmp_path / "r.json").write_text(content)
    assert read_records(tmp_path) == []
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith(f"satbench: warning: skipped {tmp_path / 'r.json'}: {why}"), err


@pytest.mark.slow
def test_records_satbench_writes_pass_the_schema_check(tmp_path, capsys, monkeypatch):
    """The check refuses nothing satbench itself writes: a real kNN run's record reads back without a warning."""
    assert main(["run", "--task", "knn", "--model", "satdino-test-tiny", "--weights", "random", "--scales", "0.125",
                 "--k", "1", "--no-progress", "--no-cache", "--results-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    from satbench.records.results import read_records, record_problem

    recs = read_records(tmp_path)
    assert len(recs) == 1 and capsys.readouterr().err == ""
    assert record_problem(_record()) is None


# ---------------------------------------------------------------------------------------------------------------------
# YAML and JSON inputs
# ---------------------------------------------------------------------------------------------------------------------
def _bomb(levels: int = 9) -> str:
    """A 448-byte-class billion-laughs document: 9 levels of 9 aliases = 9**9 strings when expanded."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for i in range(levels - 1):
        name = chr(ord("b") + i)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    return "\n".join(lines) + "\n", prev


def test_alias_bomb_protocol_is_refused_at_once(tmp_path, capsys):
    """The issue's case: a ~450-byte protocol whose aliases expand to 9**9 strings (it produced a 362 MB record)."""
    text, last = _bomb()
    p = tmp_path / "bomb.yaml"
    p.write_text(text + f"name: bomb\ntask: knn\nparams:\n  scales: [0.125]\n  k: [1]\n  lol: *{last}\n")
    assert len(p.read_bytes()) < 600
    from satbench.config.protocols import load_protocol

    t0 = time.monotonic()
    with pytest.raises(SatbenchError, match="alias bomb"):
        load_protocol(str(p))
    assert time.monotonic() - t0 < 5
    code = main(["run", "--task", "knn", "--model", "satdino-test-tiny", "--weights", "random", "--dataset", "ucm-mini",
                 "--protocol", str(p), "--no-progress", "--results-dir", str(tmp_path / "res")])
    lines = _lines(capsys.readouterr().err)
    assert code == 2 and lines == [f"satbench: error: protocol file {p}: YAML aliases expand to more than "
                                              f"10000 extra nodes (an alias bomb?); write the values out"], lines
    assert not (tmp_path / "res").exists() or not list((tmp_path / "res").iterdir())


def test_alias_bomb_model_card_is_refused(tmp_path, capsys, monkeypatch):
    text, last = _bomb()
    cards = tmp_path / "cards"
    cards.mkdir()
    card = cards / "bomb.yaml"
    card.write_text(text + f"name: bomb\nfamily: satdino\npaper: {{lol: *{last}}}\n")
    monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(cards))
    assert main(["models", "--no-flops", "--strict"]) != 0  # named and skipped; --strict makes it an exit code
    lines = _lines(capsys.readouterr().err)
    assert lines == [f"satbench: warning: skipped model card {card}: YAML aliases expand to more than 10000 extra "
                     f"nodes (an alias bomb?); write the values out"], lines


def test_fifo_model_card_is_refused_without_blocking(tmp_path):
    cards = tmp_path / "cards"
    cards.mkdir()
    os.mkfifo(cards / "pipe.yaml")
    code = ("from satbench.models.registry import card_problems, list_cards\nlist_cards()\n"
            "print(*card_problems().values())\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_env(SATBENCH_MODEL_CARDS=str(cards)), timeout=60)  # before the fix: blocks forever
    assert proc.stdout.strip() == (f"model card {cards / 'pipe.yaml'} is a FIFO (named pipe), not a "
                                   f"regular file (not read)"), proc.stdout + proc.stderr


def test_alias_bomb_set_value_is_refused(capsys, tmp_path):
    nested = "&n0 [0.25, 1.0]"
    for i in range(1, 10):
        nested = f"&n{i} [{nested}, " + ", ".join([f"*n{i - 1}"] * 8) + "]"
    code = main(["pretrain", "--config", "satdino-demo-tiny", "--set", f"global_crops_scale={nested}",
                 "--output", str(tmp_path / "p")])
    lines = _lines(capsys.readouterr().err)
    assert code == 2 and lines == ["satbench: error: --set global_crops_scale: YAML aliases expand to more than 10000 "
                                   "extra nodes (an alias bomb?); write the values out"], lines
    assert not (tmp_path / "p").exists()


def test_bounded_yaml_reads_exactly_what_safe_load_reads():
    """Ordinary anchors, aliases and merge keys still work, with the same values (protocol hashes unchanged)."""
    import yaml

    from satbench.config.protocols import list_protocols
    from satbench.config.yamlio import load_yaml

    text = "base: &b {lr: 0.001, wd: 0.04}\nrun:\n  <<: *b\n  lr: 0.002\nscales: &s [1.0, 0.5]\nagain: *s\n"
    assert load_yaml(text, "x") == yaml.safe_load(text)
    for p in list_protocols():
        assert load_yaml(Path(p.path).read_text(), p.path) == yaml.safe_load(Path(p.path).read_text())
    hashes = {p.name: p.hash[:12] for p in list_protocols()}
    assert hashes["satdino-knn-v1"] == "f6029dd49d98" and hashes["satdino-linear-v1"] == "02b30ce2981d"


@pytest.mark.parametrize("text,pattern", [
    ("[" * 1_000_000, r"YAML nested deeper than 64 levels"),
    ("- " * 400_000, r"YAML nested deeper than 64 levels"),
    ("- a\n" * 100_000, r"YAML document has more than 20000 nodes"),
    ("a: &r [1, *r]\n", r"YAML alias refers to a node that contains it"),
    ("#" * (2 << 20), r"is larger than the 1 MiB"),
])
def test_yaml_limits_are_enforced_quickly(text, pattern):
    from satbench.config.yamlio import load_yaml

    t0 = time.monotonic()
    with pytest.raises(SatbenchError, match=pattern):
        load_yaml(text, "input.yaml")
    assert time.monotonic() - t0 < 30


def test_fmow_struct_json_is_bounded(tmp_path):
    os.mkfifo(tmp_path / "struct.json")
    proc = subprocess.run([sys.executable, "-m", "satbench.cli", "data", "fmow-csv", "--struct",
                           str(tmp_path / "struct.json"), "--split", "train", "--out", str(tmp_path / "f.csv")],
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 2 and _lines(proc.stderr) == [
        f"satbench: error: struct file {tmp_path / 'struct.json'} is a FIFO (named pipe), not a regular file (not read)"]
    from satbench.data.fmow import struct_to_rows
    from satbench.errors import DataError

    (tmp_path / "deep.json").write_text("[" * 50_000 + "]" * 50_000)
    with pytest.raises(DataError, match=r"deep\.json is not readable JSON: nested deeper than 64 levels"):
        struct_to_rows(tmp_path / "deep.json", "train")


@pytest.mark.parametrize("kind", ["foreign", "hardlink"])
def test_a_lock_file_satbench_did_not_write_is_never_overwritten_or_removed(tmp_path, kind):
    """A `.satbench.lock` that is not satbench's (foreign content, or a hard link to another file) is refused with one
    line; its bytes (and those of the file it links to) are untouched and it stays."""
    from satbench.io.locking import LOCK_NAME, OutputLockedError, output_lock

    folder = tmp_path / "out"
    folder.mkdir()
    precious = tmp_path / "thesis.txt"
    precious.write_text("chapter 1\n")
    lock = folder / LOCK_NAME
    if kind == "hardlink":
        os.link(precious, lock)
        match = "has 2 hard links, so it is not satbench's lock file"
    else:
        lock.write_text("chapter 1\n")
        match = "exists and is not a satbench lock file"
    with pytest.raises(OutputLockedError, match=rf"cannot lock output folder {folder}: {lock} .*{match}"):
        with output_lock(folder, "test"):
            pass
    assert lock.read_text() == "chapter 1\n" and precious.read_text() == "chapter 1\n"


def test_open_regular_never_blocks_on_a_fifo_and_names_the_path(tmp_path):
    from satbench.io.bounded import UntrustedFileError, open_regular
    from satbench.io.hashing import sha256_file

    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    with pytest.raises(UntrustedFileError, match=rf"^{fifo} is a FIFO \(named pipe\), not a regular file \(not read\)$"):
        open_regular(fifo)
    with pytest.raises(UntrustedFileError, match="is a FIFO"):
        sha256_file(fifo)
    real = tmp_path / "r.csv"
    real.write_text("a,b\n")
    with open_regular(real, "r", newline="") as fh:
        assert fh.read() == "a,b\n"
    with pytest.raises(ValueError):
        open_regular(real, "w")
