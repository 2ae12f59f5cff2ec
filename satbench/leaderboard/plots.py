"""Plots: kNN accuracy vs scale (one panel per dataset, one shared y-range, legend outside the data, paper means as
distinct hollow markers, interval bars where records carry them), per-class accuracy and confusion matrices."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from satbench.leaderboard import runs as R
from satbench.leaderboard.layout import column_of, per_scale_tasks, task_specs, ds_sort_key, entry_label, latest_runs
from satbench.leaderboard.references import load_references, ref_key, ref_label, ref_source

_MEAN_X = 1.0  # x position (log2 scale units) of the "mean" column, right of scale 1.0 (log2 = 0)
_PAPER_MARKERS = ("*", "D", "P", "X", "v", "^")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    """The figure as PNG; ``bbox_inches="tight"`` keeps every artist (legend, titles) inside the image."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130, bbox_inches="tight", pad_inches=0.15)
    _plt().close(fig)
    return buf.getvalue()


def _save(data: bytes, path: str | Path) -> Path:
    from satbench.io.atomic import atomic_write_bytes

    return atomic_write_bytes(Path(path), data)


def knn_scales_png(records: list[dict[str, Any]], refs: Optional[list[dict[str, Any]]] = None,
                   task: Optional[str] = None) -> Optional[bytes]:
    """PNG bytes of :func:`knn_scales_figure`, or None without kNN runs."""
    fig = knn_scales_figure(records, refs, task)
    return None if fig is None else _png(fig)


def knn_scales_figure(records: list[dict[str, Any]], refs: Optional[list[dict[str, Any]]] = None,
                      task: Optional[str] = None) -> Any:
    """Figure: top-1 vs scale per dataset panel for the latest kNN runs (None without kNN runs). All panels share one
    y-range; the legend sits below the panels (outside the data, inside the figure: :func:`fit_legend`); each run's mean is drawn right of the scales with
    its interval bar (summary.ci) and the papers' reported means as hollow black markers."""
    task = task or per_scale_tasks()[0]
    spec = task_specs()[task]
    runs = latest_runs([r for r in records if r.get("task") == task])
    if not runs:
        return None
    refs = refs if refs is not None else load_references()
    plt = _plt()
    panels: dict[str, list[dict[str, Any]]] = {}
    for r, _ in runs:
        panels.setdefault(column_of(spec, r)[0], []).append(r)
    keys = sorted(panels, key=lambda k: ds_sort_key(k.split("~")[-1]) + (k,))
    ncol = min(3, len(keys))
    nrow = math.ceil(len(keys) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.6 * ncol, 3.5 * nrow + 0.4), sharey=True, squeeze=False,
                             layout="constrained")
    labels = sorted({entry_label(r, spec) for r, _ in runs})
    cmap = plt.get_cmap("tab10")
    colour = {lab: cmap(i % 10) for i, lab in enumerate(labels)}
    handles: dict[str, Any] = {}
    paper_handles: dict[str, Any] = {}
    paper_marker: dict[str, str] = {}
    all_y: list[float] = []
    ticks = sorted({math.log2(float(s)) for r, _ in runs for s in (R.section(r, "summary").get("top1_per_scale") or {})
                    if _positive(s)})
    for ax, key in zip(axes.flat, keys):
        recs = panels[key]
        for r in recs:
            lab = entry_label(r, spec)
            per = R.section(r, "summary").get("top1_per_scale") or {}
            pts = sorted(((float(s), R.number(r, "summary", "top1_per_scale", s)) for s in per if _positive(s)),
                         key=lambda p: p[0])
            pts = [(s, v) for s, v in pts if v is not None and s > 0]
            xs, ys = [math.log2(s) for s, _ in pts], [v for _, v in pts]
            (line,) = ax.plot(xs, ys, marker="o", ms=5, lw=1.8, color=colour[lab], label=lab)
            handles.setdefault(lab, line)
            all_y += ys
            mean = spec.value(r)
            if mean is not None:
                ci = R.interval(r, spec.metric)
                yerr = None if ci is None else [[max(0.0, mean - ci[0])], [max(0.0, ci[1] - mean)]]
                ax.errorbar([_MEAN_X], [mean], yerr=yerr, fmt="o", ms=6, color=colour[lab], capsize=4, lw=1.4)
                all_y += [mean] + (list(ci) if ci else [])
        # paper means (the papers give no per-scale numbers), only on full datasets
        if "~" not in key:
            models = {R.text(r, "model") for r in recs}
            n = 0
            for ref in refs:
                table = ref.get(spec.reference)
                if not isinstance(table, dict):
                    continue
                vals = (table.get("values") or {}).get(key) or {}
                for model in sorted(models):
                    rk = ref_key(ref, model)
                    if rk is None or not isinstance(vals.get(rk), (int, float)):
                        continue
                    lab = f"{ref_label(ref, rk)} · paper ({ref_source(ref)}) · reported mean"
                    mk = paper_marker.setdefault(lab, _PAPER_MARKERS[len(paper_marker) % len(_PAPER_MARKERS)])
                    n += 1
                    h = ax.scatter([_MEAN_X + 0.2 * n], [vals[rk]], marker=mk, s=90, facecolors="none",
                                   edgecolors="black", linewidths=1.3, zorder=5, label=lab)
                    paper_handles.setdefault(lab, h)
                    all_y.append(float(vals[rk]))
        ax.axvline(0.5, color="0.75", lw=0.8, ls="--")
        ax.set_xticks(ticks + [_MEAN_X], [f"{2 ** t:g}" for t in ticks] + ["mean"])
        ax.set_xlim(min(ticks + [0]) - 0.4, _MEAN_X + 0.9)
        ax.set_title(column_of(spec, recs[0])[2], fontsize=11)
        ax.grid(alpha=0.3)
        ax.set_xlabel("scale (fraction of native size)", fontsize=9)
    for ax in axes[:, 0]:
        ax.set_ylabel("kNN top-1 (%)")
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    if all_y:
        lo, hi = min(all_y), max(all_y)
        pad = max(2.0, 0.06 * (hi - lo))
        axes[0, 0].set_ylim(max(0.0, lo - pad), min(103.0, hi + pad))
    title = fig.suptitle("kNN top-1 vs scale (latest run of each model / weights / protocol; paper: reported mean only)",
                         fontsize=11)
    handles.update(paper_handles)  # runs first, then the papers' points
    fit_legend(fig, list(handles.values()), [wrap_label(lab) for lab in handles], title)
    return fig


#: Legend labels longer than this many characters are wrapped at their `` · `` separators.
LABEL_WIDTH = 56


def wrap_label(label: str, width: int = LABEL_WIDTH) -> str:
    """``label`` on several lines of at most ``width`` characters where it can, broken after its `` · `` parts."""
    lines: list[str] = []
    for part in label.split(" · "):
        if lines and len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return "\n".join(lines)


def _inside(artist: Any, fig: Any) -> bool:
    box, frame = artist.get_window_extent(fig.canvas.get_renderer()), fig.bbox
    return box.x0 >= frame.x0 - 0.5 and box.x1 <= frame.x1 + 0.5 and box.y0 >= frame.y0 - 0.5 and box.y1 <= frame.y1 + 0.5


def fit_legend(fig: Any, handles: list[Any], labels: list[str], title: Any = None) -> Any:
    """A figure legend below the panels that lies wholly inside the figure: two columns when they fit, else one, else
    the figure is widened to the legend; a suptitle wider than the figure is wrapped. Returns the legend."""
    import textwrap

    legend = None
    for ncol in ([2, 1] if len(labels) <= 6 else [1]):
        if legend is not None:
            legend.remove()
        legend = fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize=8, frameon=False)
        fig.canvas.draw()
        if _inside(legend, fig):
            break
    else:
        need = legend.get_window_extent(fig.canvas.get_renderer()).width / fig.dpi + 0.4
        fig.set_figwidth(max(fig.get_figwidth(), need))
        fig.canvas.draw()
    if title is not None and not _inside(title, fig):
        width = title.get_window_extent(fig.canvas.get_renderer()).width
        chars = max(20, int(len(title.get_text()) * fig.bbox.width / width * 0.9))
        title.set_text(textwrap.fill(title.get_text(), chars))
        fig.canvas.draw()
    return legend


def _positive(s: Any) -> bool:
    try:
        return float(s) > 0
    except (TypeError, ValueError):
        return False


def plot_knn_scales(records: list[dict[str, Any]], path: str | Path,
                    refs: Optional[list[dict[str, Any]]] = None) -> Optional[Path]:
    """Write :func:`knn_scales_png` to ``path`` (atomically); None without kNN runs."""
    data = knn_scales_png(records, refs)
    return None if data is None else _save(data, path)


def per_class_png(names: Sequence[str], values: Sequence[float], title: str, xlabel: str) -> bytes:
    """Horizontal bar chart of per-class values (sorted, lowest at the bottom) with the class mean as a line."""
    plt = _plt()
    order = np.argsort(np.asarray(values, dtype=float))
    n = len(names)
    fig, ax = plt.subplots(figsize=(7.5, max(2.5, 0.26 * n + 1.3)), layout="constrained")
    vals = np.asarray(values, dtype=float)[order]
    ax.barh(np.arange(n), vals, color=plt.get_cmap("viridis")(vals / 100.0 * 0.85), height=0.75)
    ax.set_yticks(np.arange(n), [str(names[i]) for i in order], fontsize=8 if n > 20 else 9)
    mean = float(np.nanmean(vals)) if n else 0.0
    ax.axvline(mean, color="black", lw=1, ls="--", label=f"mean over classes {mean:.2f}")
    for y, v in enumerate(vals):
        ax.text(min(v, 100) + 0.8, y, f"{v:.1f}", va="center", fontsize=7)
    ax.set_xlim(0, 108)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def confusion_png(matrix: np.ndarray, names: Sequence[str], title: str) -> bytes:
    """Row-normalised confusion matrix (rows = true class, recall per row), counts annotated for up to 15 classes."""
    plt = _plt()
    m = np.asarray(matrix, dtype=np.float64)
    rows = m.sum(axis=1, keepdims=True)
    norm = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0) * 100.0
    n = m.shape[0]
    side = min(16.0, max(4.5, 0.32 * n + 2.5))
    fig, ax = plt.subplots(figsize=(side + 1.2, side), layout="constrained")
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=100)
    fs = 8 if n <= 20 else 6
    ax.set_xticks(np.arange(n), [str(x) for x in names], rotation=90, fontsize=fs)
    ax.set_yticks(np.arange(n), [str(x) for x in names], fontsize=fs)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=10)
    if n <= 15:
        for i in range(n):
            for j in range(n):
                if m[i, j]:
                    ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 55 else "black")
    fig.colorbar(im, ax=ax, shrink=0.8, label="% of the true class")
    return _png(fig)
