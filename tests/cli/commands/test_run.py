"""`satbench run --task T`: each task parses with its own parser (a shared parent for the common options plus the
task's own), so flags never collide and `--help` shows exactly what applies."""

from __future__ import annotations

import pytest

from satbench.cli.app import main
from satbench.cli.commands.run import task_parser
from satbench.eval.task import RunOptions, get_task, list_tasks


def test_every_registered_task_has_its_own_parser():
    names = {t.name for t in list_tasks()}
    assert {"knn", "linear", "cached-linear", "finetune", "segmentation"} <= names
    for t in list_tasks():
        p = task_parser(t)
        args = p.parse_args(["--task", t.name])
        assert args.num_workers is None  # filled with the task's own default by satbench.api.run
        assert isinstance(t.default_num_workers, int)


def test_knn_defaults_and_help_show_only_knn_options(capsys):
    assert get_task("knn").default_num_workers == 1 and get_task("linear").default_num_workers == 2
    with pytest.raises(SystemExit):
        main(["run", "--task", "knn", "--help"])
    out = capsys.readouterr().out
    assert "knn options" in out and "--scales" in out and "--k K" in out
    assert "linear options" not in out and "--epochs" not in out and "--crop" not in out


def test_another_tasks_flag_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--task", "knn", "--epochs", "3"])
    assert exc.value.code == 2 and "unrecognized arguments: --epochs 3" in capsys.readouterr().err


def test_run_help_lists_the_tasks_and_unknown_tasks_name_close_matches(capsys):
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(t.name in out for t in list_tasks())
    assert main(["run", "--task", "knnn"]) == 2
    assert "unknown task 'knnn' (did you mean: knn" in capsys.readouterr().err


@pytest.mark.parametrize("argv, pattern", [
    (["--batch-size", "0"], "expected a positive integer"),
    (["--batch-size", "-3"], "expected a positive integer"),
    (["--seed", "-1"], "expected an integer seed in 0..4294967295"),
    (["--seed", str(2**32)], "expected an integer seed"),
    (["--scales", "nan"], "expected a positive number"),
    (["--scales", "inf"], "expected a positive number"),
    (["--device", "meta"], "expected auto, cpu, cuda or cuda:N"),
    (["--num-workers", "-1"], "expected a non-negative integer"),
])
def test_arguments_are_validated_at_parse_time(argv, pattern, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--task", "knn", "--weights", "random", *argv])
    assert exc.value.code == 2 and pattern in capsys.readouterr().err


def test_run_options_are_not_protocol_parameters():
    """The linear protocol's batch_size is a protocol parameter; the run's --batch-size is the extraction batch."""
    opts = RunOptions(batch_size=32)
    assert opts.batch_size == 32
    t = get_task("linear")
    import argparse

    args = task_parser(t).parse_args(["--task", "linear", "--train-batch-size", "16", "--batch-size", "8"])
    assert t.protocol_overrides(args) == {"batch_size": 16} and args.batch_size == 8
    assert isinstance(args, argparse.Namespace)
