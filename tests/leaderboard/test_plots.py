"""The per-scale kNN plot: its legend and title lie inside the figure and inside the saved PNG (nothing cut at the
edges), whatever the number of panels and the length of the run labels."""

from __future__ import annotations

import io

import numpy as np
import pytest

from satbench.leaderboard.plots import knn_scales_figure, knn_scales_png, wrap_label
from satbench.records.results import read_records
from support.leaderboard_records import RANDOM, RECORDS, knn_record

LONG = {"k": [5, 10], "k_report": 5, "scales": [1.0, 0.5]}


def _one_panel():
    """The clipped case: one dataset (a single panel, a narrow figure), two runs with long labels."""
    return [knn_record(ds="eurosat", avg=80.0), knn_record(ds="eurosat", avg=70.0, weights=RANDOM, overrides=LONG)]


def _many():
    return [knn_record(ds=ds, avg=60.0 + i, weights=dict(RANDOM, seed=i), overrides=LONG if i % 2 else None)
            for i, ds in enumerate(["eurosat", "resisc45", "uc_merced", "whu-rs19", "rs_c11", "siri-whu", "eurosat",
                                    "resisc45"])]


def _inside(box, frame) -> bool:
    return box.x0 >= frame.x0 - 0.5 and box.x1 <= frame.x1 + 0.5 and box.y0 >= frame.y0 - 0.5 and box.y1 <= frame.y1 + 0.5


@pytest.mark.parametrize("records", [_one_panel, _many, lambda: read_records(RECORDS)], ids=["one-panel", "many", "fixtures"])
def test_the_legend_and_title_lie_inside_the_figure(records):
    fig = knn_scales_figure(records())
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    assert _inside(legend.get_window_extent(renderer), fig.bbox), (legend.get_window_extent(renderer), fig.bbox)
    assert _inside(fig._suptitle.get_window_extent(renderer), fig.bbox)
    texts = [t.get_text() for t in legend.get_texts()]
    assert all(len(line) <= 60 for t in texts for line in t.splitlines())  # long labels are wrapped
    assert any("random weights (seed 0)" in t for t in texts)


@pytest.mark.parametrize("records", [_one_panel, _many], ids=["one-panel", "many"])
def test_nothing_is_cut_at_the_edges_of_the_png(records):
    from matplotlib.image import imread

    png = imread(io.BytesIO(knn_scales_png(records())), format="png")
    rgb = png[..., :3]
    edges = np.concatenate([rgb[:, :3].reshape(-1, 3), rgb[:, -3:].reshape(-1, 3), rgb[:3].reshape(-1, 3),
                            rgb[-3:].reshape(-1, 3)])
    assert edges.min() > 0.95, "ink at the image border: an artist is cut off"
    assert (rgb.min(axis=2) < 0.5).any()  # and the image is not blank


def test_wrap_label_breaks_at_the_separators():
    label = "satdino-vit_small-16 · random weights (seed 0) · satdino-knn-v1 · k=5 · k list=5,10 · scales=1.0,0.5"
    lines = wrap_label(label).splitlines()
    assert " · ".join(lines) == label and all(len(x) <= 56 for x in lines) and len(lines) == 2
    assert wrap_label("short · label") == "short · label"
