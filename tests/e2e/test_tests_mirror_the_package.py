"""The test tree mirrors the package, so a module's tests are found by its name: ``satbench/<path>/<module>.py`` is
tested in ``tests/<path>/test_<module>.py`` (or ``test_<module>_<aspect>.py``; ``test_<package>.py`` for a package's
public surface). Cross-cutting behaviour of the whole tool lives in ``tests/e2e/``, documentation examples in
``tests/docs/``, shared helpers in ``tests/support/`` and the generated bad-input corpus in ``tests/bad_inputs/``."""

from __future__ import annotations

from support.paths import REPO, TESTS

#: Not named after one module, with the reason.
EXCEPTIONS = {
    "models/backbones/test_baselines.py": "SatMAE and Scale-MAE side by side (satmae.py, scalemae.py, sincos.py), parametrized",
    "models/backbones/test_baselines_exact.py": "the official SatMAE / Scale-MAE statistics through cards, protocols and extract",
}
CROSS_CUTTING = {"e2e", "docs", "support", "bad_inputs", "fixtures"}


def _module_for(test: str) -> bool:
    parts = test.split("/")
    folder = REPO / "satbench" / "/".join(parts[:-1])
    name = parts[-1][len("test_"):-len(".py")]
    if not folder.is_dir():
        return False
    if name == folder.name:  # the package itself
        return True
    pieces = name.split("_")
    return any((folder / f"{'_'.join(pieces[:i])}.py").is_file() or (folder / "_".join(pieces[:i])).is_dir()
               for i in range(len(pieces), 0, -1))


def test_every_test_file_is_named_after_the_module_it_tests():
    tests = sorted(p.relative_to(TESTS).as_posix() for p in TESTS.rglob("test_*.py")
                   if p.relative_to(TESTS).parts[0] not in CROSS_CUTTING)
    assert len(tests) > 40
    orphans = [t for t in tests if t not in EXCEPTIONS and not _module_for(t)]
    assert not orphans, f"test files not named after a satbench module (rename, or move to tests/e2e/): {orphans}"
    assert all(not _module_for(t) for t in EXCEPTIONS), "an exception that now matches a module is stale"


def test_the_rule_rejects_a_misplaced_test():
    assert _module_for("eval/test_knn.py") and _module_for("eval/test_knn_search.py") and _module_for("test_cli.py")
    assert _module_for("leaderboard/test_leaderboard.py") and _module_for("seg/test_runner_distributed.py")
    assert not _module_for("test_knn.py") and not _module_for("eval/test_cachez.py") and not _module_for("nope/test_x.py")
