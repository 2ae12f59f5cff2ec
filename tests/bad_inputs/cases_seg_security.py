"""Corpus cases: segmentation work dirs as untrusted input (seg-predict configs, run --resume checkpoints/pointers).

Every malicious input here writes a marker file if satbench executes it; each case lists that marker as ``absent``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[2]
POTSDAM = REPO / "tests" / "fixtures" / "seg" / "potsdam"


class _ExecOnLoad:
    """Unpickling this runs ``exec`` (a full ``torch.load`` would create the marker)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open(r'{self.marker}', 'w').close()",))


class _Getattr:
    def __reduce__(self):
        from mmengine.logging import HistoryBuffer

        return (getattr, (HistoryBuffer, "register_statistics"))


def _evil_py(marker: Path) -> str:
    return f"__import__('pathlib').Path(r'{marker}').touch()\nmodel = dict()\n"


def _record(model: str = "satdino-test-tiny", **changes: Any) -> dict[str, Any]:
    """A run record as ``satbench run --task segmentation`` writes it (tiny card, potsdam fixture tiles)."""
    from satbench.seg.run_args import SegRunArgs

    rec = SegRunArgs(model=model, dataset="potsdam", crop=224, weights="random", data_root=str(POTSDAM),
                     out_indices=(0, 1, 1, 1), total_batch=2, num_workers=0, iters=2, work_dir="w",
                     cfg_options=(("model.decode_head.channels", 32),), dist_backend="gloo").to_json()
    rec["args"].update(changes)
    return rec


def add_cases(out: Path, res: Path, case, ctx: dict[str, Any]) -> None:
    root = out / "seg_security"
    root.mkdir(parents=True, exist_ok=True)
    marker = root / "MARKER_seg_security_code_ran"
    images = POTSDAM / "img_dir" / "val"
    predict = ["seg-predict", "--images", images, "--out", root / "png"]

    # --- seg-predict: a Python config is code ---------------------------------------------------------------------
    only_py = root / "wd_only_py"
    only_py.mkdir(exist_ok=True)
    (only_py / "satbench_seg_config.py").write_text(_evil_py(marker))
    case("seg-predict-work-dir-python-config-not-executed", predict + ["--work-dir", only_py], "error",
         r"satbench_seg_config\.py is a Python config.*--trust-config", absent=[marker])
    case("seg-predict-explicit-python-config-not-executed", predict + ["--config", only_py / "satbench_seg_config.py",
                                                                       "--weights", only_py / "final_weights.pth"],
         "error", r"--trust-config", absent=[marker])
    beside = root / "wd_edited_py"
    beside.mkdir(exist_ok=True)
    (beside / "satbench_seg_run.json").write_text(json.dumps(_record()))
    (beside / "satbench_seg_config.py").write_text(_evil_py(marker))
    case("seg-predict-edited-python-config-beside-record", predict + ["--config", beside / "satbench_seg_config.py",
                                                                      "--weights", beside / "final_weights.pth"],
         "error", r"differs from the config satbench rebuilds.*--trust-config", absent=[marker])

    # --- seg-predict: the run record is data, validated -----------------------------------------------------------
    def record_case(cid: str, rec: Any, pattern: str) -> None:
        wd = root / f"wd_{cid}"
        wd.mkdir(exist_ok=True)
        (wd / "satbench_seg_run.json").write_text(rec if isinstance(rec, str) else json.dumps(rec))
        (wd / "satbench_seg_config.py").write_text(_evil_py(marker))  # never read on the --work-dir path
        case(f"seg-predict-record-{cid}", predict + ["--work-dir", wd], "error", pattern, absent=[marker])

    pipeline = [{"type": "LoadImageFromFile"}, {"type": "subprocess.call", "args": ["touch", str(marker)]}]
    base_opts = _record()["args"]["cfg_options"]
    record_case("type-in-replaced-pipeline",
                _record(cfg_options=base_opts + [["test_pipeline", repr(pipeline)]]), r"'type' selects code")
    record_case("dotted-type-key", _record(cfg_options=[["model.decode_head.type", "'subprocess.call'"]]),
                r"model\.decode_head\.type: 'type' selects code")
    record_case("custom-imports-option", _record(cfg_options=[["custom_imports", repr({"imports": ["evil_mod"]})]]),
                r"'custom_imports' selects code")
    record_case("scope-key", _record(cfg_options=[["model._scope_", "'evil_mod'"]]), r"starting with '_'")
    record_case("lazy-object-text", _record(cfg_options=[["log_level", f"__import__('os').system('touch {marker}')"]]),
                r"is not a Python literal")
    rec = _record()
    rec["args"]["custom_imports"] = {"imports": ["evil_mod"]}
    record_case("unknown-field", rec, r"unknown keys \['custom_imports'\]")
    record_case("mistyped-crop", _record(crop="224"), r"crop must be one of")
    record_case("not-json", "{\"schema\": ", r"not readable JSON")
    fifo_card = root / "fifo_card.yaml"
    if not os.path.lexists(fifo_card):
        os.mkfifo(fifo_card)
    record_case("card-is-a-fifo", _record(model=str(fifo_card)), r"fifo_card\.yaml is .*not a regular file")
    fifo_wd = root / "wd_record_fifo"
    fifo_wd.mkdir(exist_ok=True)
    if not os.path.lexists(fifo_wd / "satbench_seg_run.json"):
        os.mkfifo(fifo_wd / "satbench_seg_run.json")
    case("seg-predict-record-is-a-fifo", predict + ["--work-dir", fifo_wd], "error",
         r"satbench_seg_run\.json: the recorded segmentation run is .*not a regular file", absent=[marker])

    # --- run --task segmentation: code-selecting overrides, --resume ----------------------------------------------
    def run(wd: Path, *extra: Any) -> list[Any]:
        return ["run", "--task", "segmentation", "--model", "satdino-test-tiny", "--weights", "random", "--dataset",
                POTSDAM, "--crop", "224", "--seg-batch", "2", "--num-workers", "0", "--seg-layers", "0,1,1,1",
                "--iters", "2", "--work-dir", wd, "--results-dir", res, "--no-progress", *extra]

    case("seg-run-type-in-cfg-options", run(root / "wd_run_opts", "--seg-cfg-options", f"test_pipeline={pipeline!r}"),
         "error", r"--seg-cfg-options test_pipeline: dict key 'type' selects code", absent=[marker])

    def resume_case(cid: str, setup, pattern: str) -> None:
        wd = root / f"wd_resume_{cid}"
        wd.mkdir(exist_ok=True)
        setup(wd)
        case(f"seg-resume-{cid}", run(wd, "--resume"), "error", pattern, absent=[marker])

    def pickle_pointer(obj: Any):
        def setup(wd: Path) -> None:
            torch.save({"meta": {"iter": 1, "epoch": 0}, "state_dict": {}, "message_hub": {}, "x": obj},
                       wd / "iter_1.pth")
            (wd / "last_checkpoint").write_text(str(wd / "iter_1.pth"))
        return setup

    resume_case("reduce-pickle", pickle_pointer(_ExecOnLoad(marker)),
                r"iter_1\.pth: refused.*type exec.*--trust-checkpoint")
    resume_case("getattr-gadget", pickle_pointer(_Getattr()),
                r"builtins\.getattr on HistoryBuffer\.register_statistics.*--trust-checkpoint")

    outside = root / "outside_iter_1.pth"
    torch.save({"meta": {"iter": 1, "epoch": 0}, "x": _ExecOnLoad(marker)}, outside)
    resume_case("pointer-outside-work-dir", lambda wd: (wd / "last_checkpoint").write_text(str(outside)),
                r"last_checkpoint names .*outside_iter_1\.pth, which is not inside the work dir")

    def pointer_fifo(wd: Path) -> None:
        if not os.path.lexists(wd / "last_checkpoint"):
            os.mkfifo(wd / "last_checkpoint")
    resume_case("pointer-is-a-fifo", pointer_fifo,
                r"last_checkpoint: the last_checkpoint pointer is .*not a regular file")

    def pointer_symlink(wd: Path) -> None:
        if not os.path.lexists(wd / "last_checkpoint"):
            (root / "pointer_target").write_text(str(outside))
            os.symlink(root / "pointer_target", wd / "last_checkpoint")
    resume_case("pointer-is-a-symlink", pointer_symlink, r"is a symbolic link")
    resume_case("pointer-huge", lambda wd: (wd / "last_checkpoint").write_text("x" * 100000),
                r"larger than the 4 KiB allowed")
