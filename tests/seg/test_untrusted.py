"""A segmentation work dir is untrusted input: seg-predict never executes a config it cannot verify as satbench's
own, and ``run --resume`` never unpickles code from the checkpoint ``last_checkpoint`` names.

Every attack writes a marker file if it gets to run; the marker must not appear. Tiny model (the 2-block
satdino-test-tiny card), the real fixture tiles, 64 px crops."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("mmseg")

from satbench.cli.app import main  # noqa: E402
from support.paths import CARDS
from support.seg import FIX, SMALL  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture(autouse=True)
def _test_cards(monkeypatch):
    monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(CARDS))


def _run_argv(wd: Path, res: Path, iters: int) -> list[str]:
    return ["run", "--task", "segmentation", "--model", "satdino-test-tiny", "--weights", "random", "--dataset",
            str(FIX / "potsdam"), "--crop", "224", "--seg-batch", "2", "--num-workers", "0", "--seg-layers", "0,1,1,1",
            "--iters", str(iters), "--work-dir", str(wd), "--results-dir", str(res), "--no-progress",
            "--seg-cfg-options", *SMALL]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A genuine one-iteration run (checkpoint iter_1.pth, final_weights.pth, satbench_seg_run.json, .py dump)."""
    base = tmp_path_factory.mktemp("segtrust")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SATBENCH_MODEL_CARDS", str(CARDS))
        assert main(_run_argv(base / "work", base / "res", 1)) == 0
    return base / "work"


@contextlib.contextmanager
def _no_hang(seconds: int = 60):
    """Fail instead of blocking forever (a FIFO read without O_NONBLOCK would)."""
    def boom(*_):
        raise TimeoutError("blocked on a FIFO")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _cli(argv: list[str], capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    with _no_hang():
        code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, [ln for ln in err.strip().splitlines() if ln.strip() and "%|" not in ln]


def _refused(code: int, lines: list[str], *needles: str) -> None:
    assert code != 0 and len(lines) == 1 and lines[0].startswith("satbench: error:"), lines
    for n in needles:
        assert n in lines[0], lines


def _evil_py(marker: Path, real: str = "") -> str:
    return f"__import__('pathlib').Path(r'{marker}').touch()\n" + real


def _predict_argv(**kw) -> list[str]:
    argv = ["seg-predict", "--images", FIX / "potsdam" / "img_dir" / "val", "--out", kw.pop("out")]
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}"] + ([] if v is None else [v])
    return argv


def _no_records(res: Path) -> bool:
    return not list(res.glob("*.json"))


# --- seg-predict: configs ---------------------------------------------------------------------------------------------
def test_seg_predict_never_executes_a_python_config_without_the_flag(run_dir, tmp_path, capsys):
    marker = tmp_path / "MARKER_config_executed"
    real = (run_dir / "satbench_seg_config.py").read_text()
    only_py = tmp_path / "only_py"  # a work dir as an older satbench (or someone else) left it: just the .py
    only_py.mkdir()
    (only_py / "satbench_seg_config.py").write_text(_evil_py(marker, real))
    shutil.copy(run_dir / "final_weights.pth", only_py)

    code, lines = _cli(_predict_argv(work_dir=only_py, out=tmp_path / "png1"), capsys)
    _refused(code, lines, "--trust-config", "satbench_seg_config.py")
    code, lines = _cli(_predict_argv(config=only_py / "satbench_seg_config.py", weights=only_py / "final_weights.pth",
                                     out=tmp_path / "png2"), capsys)
    _refused(code, lines, "--trust-config", str(only_py / "satbench_seg_config.py"))

    tampered = tmp_path / "tampered"  # the genuine JSON, with an edited .py beside it
    shutil.copytree(run_dir, tampered)
    (tampered / "satbench_seg_config.py").write_text(_evil_py(marker, real))
    code, lines = _cli(_predict_argv(config=tampered / "satbench_seg_config.py",
                                     weights=tampered / "final_weights.pth", out=tmp_path / "png3"), capsys)
    _refused(code, lines, "--trust-config", "differs from the config satbench rebuilds")
    code, lines = _cli(_predict_argv(work_dir=tampered, out=tmp_path / "png4"), capsys)  # uses the JSON, never the .py
    assert code == 0, lines
    assert not marker.exists()

    code, lines = _cli(_predict_argv(work_dir=only_py, out=tmp_path / "png5", trust_config=None), capsys)
    assert marker.exists() and code == 0, lines  # the flag is the one way to run a Python config


def test_legit_work_dir_needs_no_flag_and_predicts_as_the_python_config_did(run_dir, tmp_path, capsys):
    from mmengine.config import Config

    from satbench.seg.predict import load_segmentor, predict
    from satbench.seg.run_args import make_config, read_run_args

    rebuilt, _ = make_config(read_run_args(run_dir / "satbench_seg_run.json"))
    assert rebuilt.pretty_text == (run_dir / "satbench_seg_config.py").read_text()  # the rebuild is the run's config
    code, lines = _cli(_predict_argv(work_dir=run_dir, out=tmp_path / "png", limit=2), capsys)
    assert code == 0, lines
    assert len(list((tmp_path / "png").glob("*_overlay.png"))) == 1  # one val tile
    tiles = sorted((FIX / "potsdam" / "img_dir").glob("*/*.png"))
    before = predict(load_segmentor(Config.fromfile(run_dir / "satbench_seg_config.py"), run_dir / "final_weights.pth"),
                     tiles)  # what seg-predict did before: execute the .py (test-written, trusted)
    now = predict(load_segmentor(run_dir / "satbench_seg_run.json", run_dir / "final_weights.pth"), tiles)
    unchanged_py = predict(load_segmentor(run_dir / "satbench_seg_config.py", run_dir / "final_weights.pth"), tiles)
    assert len(before) == len(tiles) == 4
    assert all(np.array_equal(a, b) and np.array_equal(a, c) for a, b, c in zip(before, now, unchanged_py))


def _mutate(run_dir: Path, tmp_path: Path, change) -> Path:
    wd = tmp_path / "wd"
    shutil.copytree(run_dir, wd)
    rec = json.loads((wd / "satbench_seg_run.json").read_text())
    change(rec["args"], wd)
    (wd / "satbench_seg_run.json").write_text(json.dumps(rec))
    return wd


def _opt(key: str, value) -> callable:
    return lambda args, wd: args["cfg_options"].append([key, repr(value)])


@pytest.mark.parametrize("name,change,pattern", [
    ("type-in-replaced-list", lambda m: _opt("test_pipeline", [
        {"type": "LoadImageFromFile"}, {"type": "subprocess.call", "args": ["touch", str(m)]}]), "'type' selects code"),
    ("type-key", lambda m: _opt("model.backbone.type", "subprocess.call"), "'type' selects code"),
    ("type-in-dict", lambda m: _opt("model.decode_head.loss_decode", {"type": "subprocess.call"}),
     "'type' selects code"),
    ("custom-imports", lambda m: _opt("custom_imports", {"imports": ["evil"]}), "'custom_imports' selects code"),
    ("default-scope", lambda m: _opt("default_scope", "evil"), "'default_scope' selects code"),
    ("constructor", lambda m: _opt("optim_wrapper.constructor", "subprocess.call"), "'constructor' selects code"),
    ("private-key", lambda m: _opt("model._scope_", "evil"), "keys starting with '_'"),
    ("init-cfg", lambda m: _opt("model.init_cfg", {"checkpoint": "http://x/y.pth"}), "'init_cfg' selects code"),
    ("trust-smuggled", lambda m: _opt("model.backbone.trust_checkpoint", True), "'trust_checkpoint' selects"),
    ("not-a-literal", lambda m: (lambda a, wd: a["cfg_options"].append(
        ["log_level", f"__import__('pathlib').Path(r'{m}').touch()"])), "is not a Python literal"),
    ("unknown-field", lambda m: (lambda a, wd: a.update(custom_imports={"imports": ["evil"]})), "unknown keys"),
    ("mistyped-field", lambda m: (lambda a, wd: a.update(crop="224")), "crop must be one of"),
    ("bool-as-int", lambda m: (lambda a, wd: a.update(frozen=1)), "frozen must be true or false"),
    ("card-is-a-fifo", lambda m: (lambda a, wd: (os.mkfifo(wd / "card.yaml"), a.update(model=str(wd / "card.yaml")))),
     "not a regular file"),
])
def test_manipulated_run_record_is_refused(name, change, pattern, run_dir, tmp_path, capsys):
    marker = tmp_path / "MARKER_json"
    wd = _mutate(run_dir, tmp_path, change(marker))
    code, lines = _cli(_predict_argv(work_dir=wd, out=tmp_path / "png"), capsys)
    _refused(code, lines, "satbench_seg_run.json")
    assert pattern in lines[0], lines
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["fifo", "huge", "not-json", "wrong-schema"])
def test_unreadable_run_record_is_one_line(damage, run_dir, tmp_path, capsys):
    wd = tmp_path / "wd"
    shutil.copytree(run_dir, wd)
    rec = wd / "satbench_seg_run.json"
    rec.unlink()
    if damage == "fifo":
        os.mkfifo(rec)
    elif damage == "huge":
        rec.write_text(" " * (2 << 20) + "{}")
    elif damage == "not-json":
        rec.write_text("{not json")
    else:
        rec.write_text(json.dumps({"schema": "other/1", "args": {}}))
    code, lines = _cli(_predict_argv(work_dir=wd, out=tmp_path / "png"), capsys)
    _refused(code, lines, "satbench_seg_run.json")


def test_run_refuses_code_selecting_cfg_options(tmp_path, capsys):
    marker = tmp_path / "MARKER_run_option"
    argv = _run_argv(tmp_path / "work", tmp_path / "res", 1) + [
        "test_pipeline=[{'type': 'LoadImageFromFile'}, "
        f"{{'type': 'subprocess.call', 'args': ['touch', '{marker}']}}]"]
    code, lines = _cli(argv, capsys)
    _refused(code, lines, "--seg-cfg-options test_pipeline", "'type' selects code")
    assert not marker.exists() and _no_records(tmp_path / "res")


# --- run --resume: the checkpoint and its pointer ---------------------------------------------------------------------
class _ExecOnLoad:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open(r'{self.marker}', 'w').close()",))


class _Getattr:
    def __reduce__(self):
        from mmengine.logging import HistoryBuffer

        return (getattr, (HistoryBuffer, "register_statistics"))


def _resume_dir(run_dir: Path, tmp_path: Path) -> Path:
    wd = tmp_path / "work"
    shutil.copytree(run_dir, wd)
    (wd / "last_checkpoint").write_text(str(wd / "iter_1.pth"))  # the copy's own checkpoint
    return wd


def _point(wd: Path, target) -> None:
    (wd / "last_checkpoint").write_text(str(target))


def _genuine(wd: Path) -> dict:
    return torch.load(wd / "iter_1.pth", map_location="cpu", weights_only=False)  # test-written, trusted


@pytest.mark.parametrize("kind", ["reduce-in-torch-save", "reduce-raw-pickle", "reduce-raw-pickle-protocol-5",
                                  "reduce-beside-genuine-state",
                                  "getattr-gadget", "statistics-registry"])
def test_resume_refuses_a_checkpoint_that_needs_code(kind, run_dir, tmp_path, capsys):
    from mmengine.logging import HistoryBuffer

    marker = tmp_path / "MARKER_resume"
    wd = _resume_dir(run_dir, tmp_path)
    evil = wd / "iter_7.pth"
    if kind == "reduce-in-torch-save":
        torch.save({"meta": {"iter": 7, "epoch": 0}, "state_dict": {}, "x": _ExecOnLoad(marker)}, evil)
    elif kind == "reduce-raw-pickle":
        evil.write_bytes(pickle.dumps(_ExecOnLoad(marker), protocol=2))
    elif kind == "reduce-raw-pickle-protocol-5":
        evil.write_bytes(pickle.dumps(_ExecOnLoad(marker), protocol=5))
    elif kind == "reduce-beside-genuine-state":
        ck = _genuine(wd)
        ck["meta"]["note"] = _ExecOnLoad(marker)
        torch.save(ck, evil)
    elif kind == "getattr-gadget":
        torch.save({"meta": {"iter": 7, "epoch": 0}, "state_dict": {}, "x": _Getattr()}, evil)
    else:
        ck = _genuine(wd)  # (loading it fills the class-wide registry with mmengine's methods)
        saved = dict(HistoryBuffer._statistics_methods)
        HistoryBuffer._statistics_methods["mean"] = "not a method"
        try:
            ck["message_hub"]["log_scalars"]["x"] = HistoryBuffer([1.0], [1])
            torch.save(ck, evil)
        finally:
            HistoryBuffer._statistics_methods.clear()
            HistoryBuffer._statistics_methods.update(saved)
    _point(wd, evil)
    code, lines = _cli(_run_argv(wd, tmp_path / "res", 2) + ["--resume"], capsys)
    _refused(code, lines, "--trust-checkpoint", str(evil))
    assert not marker.exists() and _no_records(tmp_path / "res")
    assert HistoryBuffer._statistics_methods.get("mean", HistoryBuffer.mean) is HistoryBuffer.mean
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in os.environ


def test_trust_checkpoint_is_the_one_way_to_unpickle_code(tmp_path):
    from satbench.errors import WeightsError
    from satbench.seg.safe_resume import read_resume_checkpoint

    marker = tmp_path / "MARKER_trusted"
    evil = tmp_path / "iter_7.pth"
    torch.save({"x": _ExecOnLoad(marker)}, evil)
    with pytest.raises(WeightsError, match="needs the type exec.*--trust-checkpoint"):
        read_resume_checkpoint(evil)
    assert not marker.exists()
    with pytest.raises(WeightsError, match="not an mmengine training checkpoint"):
        read_resume_checkpoint(evil, trust_checkpoint=True)
    assert marker.exists()


@pytest.mark.parametrize("pointer", ["outside-absolute", "outside-relative", "symlink-out", "pointer-fifo",
                                     "pointer-huge", "pointer-symlink", "names-a-fifo", "names-the-dir", "missing",
                                     "two-lines"])
def test_resume_pointer_must_name_a_checkpoint_inside_the_work_dir(pointer, run_dir, tmp_path, capsys):
    wd = _resume_dir(run_dir, tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(wd / "iter_1.pth", outside / "iter_1.pth")  # a genuine checkpoint, but not this work dir's
    ptr = wd / "last_checkpoint"
    ptr.unlink()
    expect = "last_checkpoint"
    if pointer == "outside-absolute":
        ptr.write_text(str(outside / "iter_1.pth"))
        expect = "not inside the work dir"
    elif pointer == "outside-relative":
        ptr.write_text("../elsewhere/iter_1.pth")
        expect = "not inside the work dir"
    elif pointer == "symlink-out":
        (wd / "iter_5.pth").symlink_to(outside / "iter_1.pth")
        ptr.write_text(str(wd / "iter_5.pth"))
        expect = "not inside the work dir"
    elif pointer == "pointer-fifo":
        os.mkfifo(ptr)
        expect = "not a regular file"
    elif pointer == "pointer-huge":
        ptr.write_text(str(wd / "iter_1.pth") + " " * 8192)
        expect = "larger than the 4 KiB allowed"
    elif pointer == "pointer-symlink":
        (outside / "ptr").write_text(str(wd / "iter_1.pth"))
        ptr.symlink_to(outside / "ptr")
        expect = "symbolic link"
    elif pointer == "names-a-fifo":
        os.mkfifo(wd / "iter_6.pth")
        ptr.write_text(str(wd / "iter_6.pth"))
        expect = "not an existing regular file"
    elif pointer == "names-the-dir":
        ptr.write_text(str(wd))
        expect = "not inside the work dir"
    elif pointer == "missing":
        ptr.write_text(str(wd / "iter_99.pth"))
        expect = "not an existing regular file"
    else:
        ptr.write_text(f"{wd / 'iter_1.pth'}\n{outside / 'iter_1.pth'}\n")
        expect = "expected one line"
    code, lines = _cli(_run_argv(wd, tmp_path / "res", 2) + ["--resume"], capsys)
    _refused(code, lines, expect)
    assert _no_records(tmp_path / "res")


def test_genuine_resume_is_weights_only_and_never_runs_config_text(run_dir, tmp_path, capsys, monkeypatch):
    """A real resume works (iteration 1 restored, iteration 2 trained) with every torch.load weights-only, and a
    config text planted in meta['config'] (which mmengine's Runner.resume would execute) is dropped."""
    marker = tmp_path / "MARKER_meta_config"
    wd = _resume_dir(run_dir, tmp_path)
    ck = _genuine(wd)
    ck["meta"]["config"] = _evil_py(marker, "gpu_ids = [0]\n")
    torch.save(ck, wd / "iter_1.pth")
    calls = []
    real_load = torch.load

    def spy(f, *a, **kw):
        calls.append((str(f), kw.get("weights_only")))
        return real_load(f, *a, **kw)

    monkeypatch.setattr(torch, "load", spy)
    code, lines = _cli(_run_argv(wd, tmp_path / "res", 2) + ["--resume"], capsys)
    assert code == 0, lines
    assert not marker.exists()
    resumed = [w for f, w in calls if f.endswith("iter_1.pth")]
    assert resumed and all(w is True for w in resumed), calls
    rec = json.loads(next((tmp_path / "res").glob("*.json")).read_text())
    assert rec["extra"]["applied"]["resumed"] is True and rec["extra"]["final_iter"] == 2
    assert len(rec["extra"]["train_loss"]) == 1  # iteration 1 was restored, only iteration 2 trained
    state = real_load(wd / "iter_2.pth", map_location="cpu", weights_only=False)
    assert {float(s["step"]) for s in state["optimizer"]["state"].values()} == {2.0}  # AdamW state carried over
    args = json.loads((wd / "satbench_seg_run.json").read_text())["args"]
    assert args["resume"] is True and args["load_from"] == str((wd / "iter_1.pth").resolve())


def test_no_pointer_means_a_fresh_run_and_pointer_reading_is_capped(tmp_path):
    from satbench.errors import WeightsError
    from satbench.seg.safe_resume import find_resume_checkpoint

    assert find_resume_checkpoint(tmp_path) is None
    (tmp_path / "iter_3.pth").write_bytes(b"x")
    (tmp_path / "last_checkpoint").write_text("iter_3.pth\n")  # relative: inside the work dir
    assert find_resume_checkpoint(tmp_path) == (tmp_path / "iter_3.pth").resolve()
    (tmp_path / "last_checkpoint").write_bytes(b"\xff\xfe")
    with pytest.raises(WeightsError, match="not a UTF-8"):
        find_resume_checkpoint(tmp_path)


def test_cfg_options_check_accepts_value_overrides_only():
    from satbench.errors import ProtocolError
    from satbench.seg.run_args import check_cfg_options

    ok = {"model.decode_head.channels": 32, "train_dataloader.dataset.pipeline.2.scale": (128, 128),
          "optim_wrapper.optimizer.lr": 1e-4, "model.test_cfg": {"mode": "slide", "crop_size": (64, 64)},
          "log_level": "WARNING", "default_hooks.checkpoint.interval": 1}
    assert check_cfg_options(ok) == ok
    for bad in ({"a.b": [{"x": [{"type": "os.system"}]}]}, {"a": {1: 2}}, {"a": object()}, {"a": float("nan")},
                {"a..b": 1}, {"a.__class__": 1}, {"a": {"_delete_": True}}):
        with pytest.raises(ProtocolError):
            check_cfg_options(bad)
