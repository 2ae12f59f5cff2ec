"""Bad-input corpus cases for files and folders satbench did not write (tests/bad_inputs/make_corpus.py plug-in).

* results folders: a FIFO, a symlink to /dev/zero, an oversized file, deep nesting, NaN, wrong-typed records and
  non-records among the ``*.json`` -- the leaderboard skips each with one warning naming it and never blocks;
* YAML: alias bombs, recursive aliases, deep nesting and oversized files as protocols and pretraining ``--set``
  values -- one error line naming the file or key;
* fMoW struct JSON: a FIFO, /dev/zero, deep nesting -- one error line, never a hang;
* output folders: a lock file that is a FIFO or a symlink (refused, left in place), a stale lock of a dead run (taken
  over, removed when the run ends);
* temp files: a dead writer's temp file is removed at the next write in its folder; a live writer's, another
  host's, a recent legacy one and a file of another pattern are left alone.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

DEAD_PID = 999_999_999  # above any pid_max: never a running process


def _record(**changes: Any) -> dict[str, Any]:
    rec = {"schema": "satbench.record/1", "id": "abc123def456", "task": "knn", "model": "satdino-test-tiny",
           "weights": {"source": "random", "path": None, "sha256": None, "kind": "random", "seed": 0},
           "protocol": {"name": "satdino-knn-v1", "task": "knn", "hash": "0" * 64, "base_hash": "0" * 64,
                        "overrides": {}, "content": {"params": {}}},
           "dataset": {"name": "ucm-mini"}, "metrics": {"top1": {}},
           "summary": {"top1_avg": 50.0, "top1_per_scale": {"0.125": 50.0}},
           "provenance": {"date": "2026-01-01T00:00:00+00:00"}}
    for key, value in changes.items():
        if value is KeyError:
            rec.pop(key, None)
        elif "." in key:
            outer, inner = key.split(".", 1)
            rec[outer] = dict(rec[outer], **{inner: value})
        else:
            rec[key] = value
    return rec


#: record variants the leaderboard must skip with a warning naming the file and the field
BAD_RECORDS: dict[str, dict[str, Any]] = {
    "dataset-list": _record(dataset=["ucm-mini"]),
    "summary-string": _record(summary="50.0"),
    "top1-string": _record(**{"summary.top1_avg": "50.0"}),
    "no-provenance": _record(provenance=KeyError),
    "model-int": _record(model=5),
    "scale-key-text": _record(**{"summary.top1_per_scale": {"abc": 1.0}}),
    "weights-list": _record(weights=[1]),
    "overrides-list": _record(**{"protocol.overrides": ["k=1"]}),
    "date-number": _record(provenance={"date": 20260101}),
}


def _bomb(levels: int = 9, width: int = 9) -> str:
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def add_cases(out: Path, res: Path, case, ctx: dict[str, Any]) -> None:
    base = out / "io"
    base.mkdir(exist_ok=True)

    # --- results folders: never hang, never follow a link, never read without limit; skip and name ---------------------
    bad = base / "results_hostile"
    bad.mkdir(exist_ok=True)
    (bad / "good.json").write_text(json.dumps(_record()))
    os.mkfifo(bad / "fifo.json")
    (bad / "zero.json").symlink_to("/dev/zero")
    (bad / "elsewhere.json").symlink_to(bad / "good.json")
    with open(bad / "huge.json", "wb") as fh:  # sparse: 9 MiB of size, no disk
        fh.truncate(9 << 20)
    (bad / "deep.json").write_text("[" * 200_000 + "]" * 200_000)
    (bad / "nan.json").write_text(json.dumps(_record(), allow_nan=True).replace("50.0", "NaN", 1))
    (bad / "overflow.json").write_text(json.dumps(_record()).replace("50.0", "1e999", 1))
    (bad / "not-a-record.json").write_text('{"hello": "world"}')
    (bad / "other-schema.json").write_text(json.dumps(_record(schema="satbench.record/9")))
    (bad / "list.json").write_text("[1, 2, 3]")
    (bad / "latin1.json").write_bytes(b'{"task": "\xe9"}')
    (bad / "sub").mkdir(exist_ok=True)
    for name, rec in BAD_RECORDS.items():
        (bad / "sub" / f"{name}.json").write_text(json.dumps(rec))
    (bad / "linked_dir.json").symlink_to(bad / "sub", target_is_directory=True)
    case("leaderboard-hostile-results-folder", ["leaderboard", "--results-dir", bad], "ok",
         present=[bad / "fifo.json", bad / "zero.json", bad / "huge.json"])
    for task in ("knn", "linear", "finetune", "segmentation"):
        case(f"leaderboard-hostile-results-folder-{task}", ["leaderboard", "--results-dir", bad, "--task", task], "ok")
    only_fifo = base / "results_only_fifo"
    only_fifo.mkdir(exist_ok=True)
    os.mkfifo(only_fifo / "20260101T000000_knn_x.json")
    case("leaderboard-fifo-only", ["leaderboard", "--results-dir", only_fifo], "ok")

    # --- YAML: size-, alias- and depth-bounded -----------------------------------------------------------------------
    knn = [str(a) for a in ctx["knn"]]
    yamls = base / "yaml"
    yamls.mkdir(exist_ok=True)
    protocol_head = "name: {name}\ntask: knn\nparams:\n"
    protos = {
        "alias-bomb": (protocol_head + "  scales: [0.125]\n  k: [1]\n  junk: *a8\n") ,
        "recursive-alias": protocol_head + "  scales: &r [0.125, *r]\n",
        "deep": protocol_head + "  scales: " + "[" * 5000 + "]" * 5000 + "\n",
        "huge": protocol_head + "  scales: [0.125]\n" + "#" * (1 << 20) + "\n",
    }
    patterns = {"alias-bomb": r"alias-bomb\.yaml: YAML aliases expand to more than",
                "recursive-alias": r"recursive-alias\.yaml: YAML alias refers to a node that contains it",
                "deep": r"deep\.yaml: YAML nested deeper than", "huge": r"huge\.yaml is .*larger than the 1 MiB allowed"}
    for name, text in protos.items():
        text = text.format(name=name)
        if name == "alias-bomb":
            text = _bomb() + text
        path = yamls / f"{name}.yaml"
        path.write_text(text)
        case(f"protocol-yaml-{name}", knn + ["--dataset", "ucm-mini", "--protocol", path], "error", patterns[name])
        case(f"pretrain-config-yaml-{name}", ["pretrain", "--config", path, "--output", base / f"p_{name}",
                                              "--no-progress"], "error", patterns[name])
    fifo_yaml = yamls / "fifo.yaml"
    os.mkfifo(fifo_yaml)
    case("protocol-yaml-fifo", knn + ["--dataset", "ucm-mini", "--protocol", fifo_yaml], "error",
         r"unknown protocol .*fifo\.yaml", present=[fifo_yaml])
    nested = "&x0 [0.4, 1]"
    for i in range(1, 12):
        nested = f"&x{i} [{nested}, " + ", ".join([f"*x{i - 1}"] * 8) + "]"
    case("pretrain-set-alias-bomb", ["pretrain", "--config", "satdino-demo-tiny", "--set", f"global_crops_scale={nested}",
                                     "--output", base / "p_set_bomb", "--no-progress"], "error",
         r"--set global_crops_scale: YAML aliases expand to more than")
    case("pretrain-set-recursive-alias", ["pretrain", "--config", "satdino-demo-tiny", "--set",
                                          "global_crops_scale=&r [0.4, *r]", "--output", base / "p_set_rec", "--no-progress"],
         "error", r"--set global_crops_scale: YAML alias refers to a node that contains it")
    case("pretrain-set-deep", ["pretrain", "--config", "satdino-demo-tiny", "--set", "global_crops_scale=" + "[" * 3000 + "]" * 3000,
                               "--output", base / "p_set_deep", "--no-progress"], "error",
         r"--set global_crops_scale: YAML nested deeper than")

    # --- fMoW struct JSON ---------------------------------------------------------------------------------------------
    fm = base / "fmow_struct"
    fm.mkdir(exist_ok=True)
    os.mkfifo(fm / "fifo.json")
    (fm / "zero.json").symlink_to("/dev/zero")
    (fm / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    for name, pattern in (("fifo", r"fifo\.json is a FIFO"), ("zero", r"zero\.json is a character device"),
                          ("deep", r"deep\.json is not readable JSON: nested deeper")):
        case(f"data-fmow-csv-struct-{name}", ["data", "fmow-csv", "--struct", fm / f"{name}.json", "--split", "train",
                                               "--out", fm / f"{name}.csv"], "error", pattern,
             absent=[fm / f"{name}.csv"], present=[fm / f"{name}.json"])

    # --- output-folder locks ------------------------------------------------------------------------------------------
    fast_pre = ["pretrain", "--config", "satdino-demo-tiny", "--set", "epochs=1", "--set", "warmup_teacher_temp_epochs=0",
                "--set", "warmup_epochs=0", "--set", "batch_size_per_gpu=4", "--set", "global_crops_size=32",
                "--set", "local_crops_size=16", "--set", "local_crops_number=2", "--set", "num_workers=0",
                "--no-progress"]
    fifo_lock = base / "out_fifo_lock"
    fifo_lock.mkdir(exist_ok=True)
    os.mkfifo(fifo_lock / ".satbench.lock")
    case("pretrain-lock-file-is-a-fifo", fast_pre + ["--output", fifo_lock], "error",
         r"cannot lock output folder .*out_fifo_lock: .*\.satbench\.lock is a FIFO", present=[fifo_lock / ".satbench.lock"],
         absent=[fifo_lock / "checkpoint.pth"])
    link_lock = base / "out_link_lock"
    link_lock.mkdir(exist_ok=True)
    victim = base / "lock_link_target.txt"
    victim.write_text("not satbench's\n")
    (link_lock / ".satbench.lock").symlink_to(victim)
    case("linear-lock-file-is-a-symlink", ["run", "--task", "linear", "--model", "satdino-test-tiny", "--weights", "random",
                                           "--dataset", "ucm-mini", "--epochs", "1", "--no-progress", "--results-dir", res,
                                           "--output-dir", link_lock], "error",
         r"cannot lock output folder .*out_link_lock: .*\.satbench\.lock is a symbolic link",
         present=[link_lock / ".satbench.lock", victim])
    file_out = base / "output_is_a_file"
    file_out.write_text("a file\n")
    case("pretrain-output-is-a-file", fast_pre + ["--output", file_out], "error",
         r"output folder .*output_is_a_file exists and is not a folder", present=[file_out])
    stale = base / "out_stale_lock"
    stale.mkdir(exist_ok=True)
    (stale / ".satbench.lock").write_text(json.dumps({"satbench_lock": 1, "pid": DEAD_PID, "host": socket.gethostname(),
                                                      "started": "2026-01-01T00:00:00Z", "command": "satbench pretrain"}))
    from bad_inputs.make_corpus import _mini_dataset

    mini = _mini_dataset(base, "ds_stale_lock")
    case("linear-stale-lock-taken-over", ["run", "--task", "linear", "--model", "satdino-test-tiny", "--weights", "random",
                                          "--dataset", mini, "--epochs", "1", "--num-workers", "0", "--no-progress",
                                          "--results-dir", base / "res_stale", "--output-dir", stale], "ok",
         present=[stale / "checkpoint.pth"], absent=[stale / ".satbench.lock"])

    # --- stale temp files -------------------------------------------------------------------------------------------
    from satbench.io.atomic import host_tag

    temps = base / "results_with_temps"
    temps.mkdir(exist_ok=True)
    dead = temps / f".20260101T000000_knn_x.json.sbtmp-{host_tag()}-{DEAD_PID}-abcd1234.tmp"
    live = temps / f".20260101T000000_knn_y.json.sbtmp-{host_tag()}-1-abcd1234.tmp"  # pid 1 always runs
    other_host = temps / f".20260101T000000_knn_z.json.sbtmp-some-other-host-{DEAD_PID}-abcd1234.tmp"
    legacy = temps / ".20260101T000000_knn_w.json.abcd1234.tmp"
    foreign = temps / "notes.tmp"
    for p in (dead, live, other_host, legacy, foreign):
        p.write_bytes(b"\0" * 1000)
    knn_temps = [str(temps) if a == str(res) else a for a in knn]
    case("knn-record-write-cleans-dead-writers-temps", knn_temps + ["--dataset", "ucm-mini"], "ok", absent=[dead],
         present=[live, other_host, legacy, foreign])

    # --- record files named on the command line: read as every record is (bounded, regular files only) ---------------
    named = base / "named_records"
    named.mkdir(exist_ok=True)
    with open(named / "huge.json", "wb") as fh:
        fh.truncate(3 << 30)  # sparse: 3 GiB that take no disk
    os.mkfifo(named / "fifo.json")
    (named / "zero.json").symlink_to("/dev/zero")
    (named / "good.json").write_text(json.dumps(_record()))
    patterns = {"huge": r"huge\.json is 3 GiB, larger than the 8 MiB allowed",
                "fifo": r"fifo\.json is a FIFO \(named pipe\), not a regular file",
                "zero": r"zero\.json is a character device, not a regular file"}
    for name, pattern in patterns.items():
        f = named / f"{name}.json"
        case(f"results-show-{name}", ["results", "show", f, "--results-dir", named], "error", pattern, present=[f])
        case(f"results-diff-{name}", ["results", "diff", f, named / "good.json", "--results-dir", named], "error", pattern)
        case(f"plot-{name}", ["plot", f, "--results-dir", named, "--out", named / f"plot_{name}"], "error", pattern,
             absent=[named / f"plot_{name}"])

    # --- split files that are not regular files: named as such, never read, never called missing -------------------
    from bad_inputs.make_corpus import _mini_dataset

    for name, make, pattern in (("fifo", os.mkfifo, r"val\.txt is a FIFO \(named pipe\), not a regular file"),
                                ("zero", lambda p: p.symlink_to("/dev/zero"), r"val\.txt is a character device")):
        ds = _mini_dataset(base, f"ds_val_{name}")
        (Path(ds) / "val.txt").unlink()
        make(Path(ds) / "val.txt")
        case(f"knn-val-split-is-{name}", ["run", "--task", "knn", "--model", "satdino-test-tiny", "--weights", "random",
                                          "--dataset", ds, "--native-size", "256", "--no-progress", "--results-dir", res],
             "error", pattern)

    # --- lock files satbench did not write: refused, never overwritten or removed ----------------------------------
    for name, pattern in (("foreign", r"\.satbench\.lock exists and is not a satbench lock file"),
                          ("hardlink", r"\.satbench\.lock has 2 hard links, so it is not satbench's lock file")):
        folder = base / f"out_{name}_lock"
        folder.mkdir(exist_ok=True)
        precious = base / f"precious_{name}.txt"
        precious.write_text("chapter 1\n")
        if name == "hardlink":
            os.link(precious, folder / ".satbench.lock")
        else:
            (folder / ".satbench.lock").write_text("chapter 1\n")
        case(f"linear-lock-file-{name}", ["run", "--task", "linear", "--model", "satdino-test-tiny", "--weights", "random",
                                          "--dataset", "ucm-mini", "--epochs", "1", "--no-progress", "--results-dir", res,
                                          "--output-dir", folder], "error", pattern,
             present=[folder / ".satbench.lock", precious], absent=[folder / "checkpoint.pth"])

    # --- a known answer is for a weight file -------------------------------------------------------------------------
    case("verify-write-random-weights", ["verify", "satdino-test-tiny", "--weights", "random", "--write"], "error",
         r"--weights random is not one")
