"""The dataset catalog (satbench/data/catalog.py): a bad dataset spec file in ``$SATBENCH_DATASETS`` is left out, as a
bad model card is, and named once on stderr when the catalog is listed; every other dataset and command keeps working;
asking for that very dataset by name is the file's one-line error (and only that line)."""

from __future__ import annotations

from pathlib import Path

import pytest

from satbench.cli.app import main
from satbench.data.catalog import CATALOG_DIR, CatalogError, catalog_problems, get_dataset_spec, list_datasets
from support.paths import CARDS, LEADERBOARD_FIXTURES


def _spec(folder: Path, name: str, extra: str = "", text: str | None = None) -> Path:
    """A user spec copied from the shipped ucm-mini one (a real, valid spec) under another name, plus ``extra``."""
    folder.mkdir(parents=True, exist_ok=True)
    if text is None:
        text = (CATALOG_DIR / "ucm-mini.yaml").read_text().replace("name: ucm-mini", f"name: {name}")
    path = folder / f"{name}.yaml"
    path.write_text(text + extra)
    return path


@pytest.fixture
def bad_spec(tmp_path, monkeypatch):
    folder = tmp_path / "datasets"
    _spec(folder, "mine")                                    # a good user spec next to the bad one
    path = _spec(folder, "advunk", "extra_key: 1\n")
    monkeypatch.setenv("SATBENCH_DATASETS", str(folder))
    return path


def _lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.strip() and "%|" not in ln]


def test_shipped_catalog_has_no_problems():
    assert catalog_problems() == {}
    assert len(list_datasets()) >= 11


def test_bad_user_spec_is_named_once_and_skipped(bad_spec, capsys):
    names = [s.name for s in list_datasets()]
    assert "ucm-mini" in names and "mine" in names and "advunk" not in names
    assert get_dataset_spec("ucm-mini").native_size == 256
    list_datasets()
    get_dataset_spec("eurosat")
    err = _lines(capsys.readouterr().err)
    assert err == [f"satbench: warning: skipped dataset spec {bad_spec}: unknown key extra_key"
                   f"{err[0].split('extra_key', 1)[1]}"], err          # one line, once per process
    assert list(catalog_problems()) == [str(bad_spec)]


def test_asking_for_the_bad_dataset_is_its_error(bad_spec, capsys):
    with pytest.raises(CatalogError, match=r"advunk\.yaml: unknown key extra_key"):
        get_dataset_spec("advunk")
    with pytest.raises(CatalogError, match=r"advunk\.yaml: unknown key extra_key"):
        get_dataset_spec("ADVUNK")


def test_duplicate_names_and_orphan_subsets_are_skipped_too(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "datasets"
    dup = _spec(folder, "eurosat")                                  # a second eurosat: the shipped one wins
    orphan = _spec(folder, "orphan", text=(CATALOG_DIR / "ucm-mini.yaml").read_text()
                   .replace("name: ucm-mini", "name: orphan").replace("subset_of: uc_merced", "subset_of: nowhere"))
    child = _spec(folder, "child", text=(CATALOG_DIR / "ucm-mini.yaml").read_text()
                  .replace("name: ucm-mini", "name: child").replace("subset_of: uc_merced", "subset_of: orphan"))
    wrong = _spec(folder, "wrong-file", text=(CATALOG_DIR / "ucm-mini.yaml").read_text().replace("name: ucm-mini",
                                                                                                "name: other"))
    monkeypatch.setenv("SATBENCH_DATASETS", str(folder))
    assert get_dataset_spec("eurosat").path == str(CATALOG_DIR / "eurosat.yaml")
    problems = catalog_problems()
    assert set(problems) == {str(dup), str(orphan), str(child), str(wrong)}
    assert "'eurosat' is already defined by" in problems[str(dup)]
    assert "subset_of names unknown dataset 'nowhere'" in problems[str(orphan)]
    assert "subset_of names unknown dataset 'orphan'" in problems[str(child)]
    assert "the file must be named other.yaml" in problems[str(wrong)]
    assert not {"orphan", "child", "other", "wrong-file"} & {s.name for s in list_datasets()}
    assert len(_lines(capsys.readouterr().err)) == 4


def test_every_command_keeps_working_beside_a_bad_spec(bad_spec, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(CARDS))
    assert main(["leaderboard", "--results-dir", str(LEADERBOARD_FIXTURES / "records")]) == 0
    out, err = capsys.readouterr()
    assert "kNN" in out and "warning: skipped dataset spec" in err and "error" not in err
    res = tmp_path / "res"
    fast = ["run", "--task", "knn", "--model", "satdino-test-tiny", "--weights", "random", "--scales", "0.125",
            "--k", "1", "--no-progress", "--no-cache", "--results-dir", str(res)]
    assert main(fast + ["--dataset", "ucm-mini"]) == 0
    assert len(list(res.glob("*.json"))) == 1
    capsys.readouterr()
    code = main(fast + ["--dataset", "advunk"])
    lines = _lines(capsys.readouterr().err)
    assert code != 0 and len(lines) == 1, lines
    assert lines[0].startswith(f"satbench: error: dataset spec {bad_spec}: unknown key extra_key")
    assert len(list(res.glob("*.json"))) == 1
