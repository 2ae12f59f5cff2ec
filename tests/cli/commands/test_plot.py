"""`satbench plot` on the record of a real run: the prediction sidecar the kNN runner writes, the class names the
record carries (label order), both PNGs."""

from __future__ import annotations

import json

import pytest

from satbench.cli.app import main
from satbench.cli.commands.plot import class_names
from support.paths import CARDS


@pytest.fixture(autouse=True)
def _cards(monkeypatch):
    monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(CARDS))


def test_plot_a_real_knn_run(tmp_path, capsys):
    res = tmp_path / "res"
    assert main(["run", "--task", "knn", "--model", "satdino-test-tiny", "--weights", "random", "--scales", "0.25",
                 "--k", "5", "--no-progress", "--num-workers", "0", "--results-dir", str(res)]) == 0
    (record,) = res.glob("*.json")
    rec = json.loads(record.read_text())
    assert rec["predictions"]["file"].endswith(".preds.npz") and (res / rec["predictions"]["file"]).is_file()
    names = class_names(rec, 21)
    assert names[:3] == ["agricultural", "airplane", "baseballdiamond"] and names == rec["dataset"]["classes"]
    capsys.readouterr()
    assert main(["plot", str(record), "--out", str(tmp_path / "plots")]) == 0
    pngs = sorted(p.name.rsplit(".", 2)[-2] for p in (tmp_path / "plots").glob("*.png"))
    assert pngs == ["confusion", "per_class"]
    assert all((tmp_path / "plots" / p).stat().st_size > 10_000 for p in (tmp_path / "plots").iterdir())


@pytest.fixture
def corruption_record(tmp_path, ucm_mini, monkeypatch):
    """The record file of a real kNN run with --corruptions gaussian_noise jpeg --severities 1 5 (tiny random ViT,
    5 classes of ucm-mini)."""
    import satbench.api as api
    from support.tiny_runs import knn_corruption_run, small_scene_copy, tiny_model

    model = tiny_model()
    monkeypatch.setattr(api, "load", lambda *a, **k: model)
    rec = knn_corruption_run(tmp_path, small_scene_copy(tmp_path / "data", ucm_mini))
    (path,) = (tmp_path / "res").glob("*.json")
    assert json.loads(path.read_text())["metrics"]["corruptions"] == rec["metrics"]["corruptions"]
    return path


def test_plot_writes_top1_vs_severity_of_a_corruption_run(corruption_record, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from satbench.leaderboard.corruption_plot import corruption_curves, corruptions_figure

    out = tmp_path / "plots"
    assert main(["plot", str(corruption_record), "--out", str(out)]) == 0
    stem = corruption_record.stem
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f"{stem}.{k}.png"
                                                                for k in ("confusion", "corruptions", "per_class"))
    assert f"{stem}.corruptions.png" in capsys.readouterr().err
    png = np.asarray(Image.open(out / f"{stem}.corruptions.png").convert("RGB"))
    assert png.shape[0] > 300 and png.shape[1] > 600 and len(np.unique(png.reshape(-1, 3), axis=0)) > 50
    # the figure draws what the record holds: one line per type at its severities, the clean line and its band
    block = json.loads(corruption_record.read_text())["metrics"]["corruptions"]
    curves = corruption_curves(block)
    fig = corruptions_figure(curves)
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    bars = {c.get_label(): c for c in ax.containers}
    assert sorted(bars) == ["gaussian_noise", "jpeg"]
    for kind in ("gaussian_noise", "jpeg"):
        rows = [r for r in block["conditions"] if r["type"] == kind]
        data = bars[kind].lines[0]
        assert list(data.get_ydata()) == pytest.approx([r["top1"] for r in rows])
        assert np.round(np.asarray(data.get_xdata(), dtype=float)).tolist() == [1, 5]
        (segments,) = bars[kind].lines[2]  # the error bars span each condition's interval
        ends = sorted((min(seg[:, 1]), max(seg[:, 1])) for seg in segments.get_segments())
        assert np.allclose(ends, sorted(tuple(r["ci"]) for r in rows))
    assert list(lines[f"clean {block['clean']['top1']:.2f}"].get_ydata()) == [block["clean"]["top1"]] * 2
    band = [p for p in ax.patches if p.get_label() == "clean interval"]
    assert len(band) == 1
    y0 = band[0].get_y()  # a Rectangle in axes-x / data-y coordinates
    assert (y0, y0 + band[0].get_height()) == pytest.approx(tuple(block["clean"]["ci"]))
    fig.canvas.draw()
    (legend,) = fig.legends
    box, frame = legend.get_window_extent(fig.canvas.get_renderer()), fig.bbox
    assert box.x0 >= frame.x0 and box.x1 <= frame.x1 + 0.5 and box.y0 >= frame.y0 and box.y1 <= frame.y1 + 0.5
    assert sorted(t.get_text() for t in legend.get_texts()) == sorted(
        ["clean interval", f"clean {block['clean']['top1']:.2f}", "gaussian_noise", "jpeg"])


@pytest.mark.parametrize("edit, pattern", [
    (lambda b: b.update(conditions="none"), r"metrics\.corruptions\.conditions must be a list"),
    (lambda b: b["conditions"][1].update(top1=float("nan")), r"conditions\[1\]\.top1 is 'nan'"),
    (lambda b: b["conditions"][0].update(type="fog"), r"conditions\[0\]\.type is 'fog'"),
    (lambda b: b["conditions"][2].update(severity=9), r"conditions\[2\]\.severity is '9'"),
    (lambda b: b["conditions"][3].update(ci=[1, 2, 3]), r"conditions\[3\]\.ci is .* expected an interval"),
    (lambda b: b["conditions"].append(dict(b["conditions"][0])), r"gaussian_noise/1 is listed twice"),
    (lambda b: b.pop("clean"), r"metrics\.corruptions\.clean is missing"),
    (lambda b: b["clean"].update(top1=250.0), r"clean\.top1 is '250\.0', expected a percentage"),
], ids=["not-a-list", "nan", "unknown-type", "severity", "interval", "twice", "no-clean", "range"])
def test_a_malformed_corruption_block_is_one_line_and_writes_nothing(corruption_record, tmp_path, capsys, edit,
                                                                     pattern):
    import re

    rec = json.loads(corruption_record.read_text())
    edit(rec["metrics"]["corruptions"])
    text = json.dumps(rec, allow_nan=True).replace("NaN", '"nan"') if "nan" in pattern else json.dumps(rec)
    corruption_record.write_text(text)
    out = tmp_path / "plots"
    code = main(["plot", str(corruption_record), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and err.startswith("satbench: error:"), err
    assert re.search(pattern, err), err
    assert not out.exists() or not list(out.iterdir())
