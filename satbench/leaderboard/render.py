"""Tables -> GitHub markdown, tidy CSV, LaTeX (booktabs) or an HTML fragment. Every string goes through its format's
escaping function (:mod:`satbench.leaderboard.escape`); numbers are formatted here and never treated as text."""

from __future__ import annotations

import csv
import io
from typing import Any

from satbench.errors import ResultsError
from satbench.leaderboard import escape as E
from satbench.leaderboard.cells import cell_text, notes_of
from satbench.leaderboard.html import html_section, page
from satbench.leaderboard.layout import Table

FORMATS = ("md", "csv", "latex", "html")
INTERVALS = ("pm", "bracket")
CSV_FIELDS = ["table", "title", "kind", "model", "source", "protocol", "settings", "k", "vs_paper", "dataset", "column",
              "value", "ci_lo", "ci_hi", "delta", "paper", "runs", "record", "protocol_hash", "weights", "commit"]
_ESC = {"plain": E.plain, "md": E.md, "html": E.html, "latex": E.latex}


def _check(fmt: str, interval: str) -> None:
    if fmt not in FORMATS:
        raise ResultsError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if interval not in INTERVALS:
        raise ResultsError(f"unknown interval style {interval!r}; expected one of {', '.join(INTERVALS)}")


def render(table: Table, fmt: str = "md", interval: str = "pm") -> str:
    """One table as markdown, tidy CSV (with header), LaTeX or an HTML ``<section>``."""
    _check(fmt, interval)
    if fmt == "csv":
        return render_csv([table], interval)
    if fmt == "latex":
        return _latex(table, interval)
    if fmt == "html":
        return html_section(table, interval)
    return _md(table, interval)


def render_document(tables: list[Table], fmt: str = "md", interval: str = "pm", **html_kw: Any) -> str:
    """Every table as ONE document: what ``satbench leaderboard --format FMT`` prints on stdout."""
    _check(fmt, interval)
    if fmt == "csv":
        return render_csv(tables, interval)
    if fmt == "html":

        return page(tables, interval=interval, **html_kw)
    parts = [render(t, fmt, interval) for t in tables]
    if fmt == "latex":
        return "% satbench leaderboard; needs \\usepackage{booktabs}\n\n" + "\n".join(parts)
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------------------------------
def _md(table: Table, interval: str) -> str:
    from tabulate import tabulate

    esc = E.md
    rows = [[esc(r.labels.get(k, "")) for k, _ in table.label_columns] +
            [cell_text(r.cells.get(k), "md", interval) for k, _ in table.value_columns] for r in table.rows]
    headers = [esc(h) for h in table.headers]
    body = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True) if rows else "(no rows)"
    notes = "".join(f"- {esc(n)}\n" for n in notes_of(table))
    return f"### {esc(table.title)}\n\n{body}\n" + (f"\n{notes}" if notes else "")


def _csv_rows(table: Table, interval: str) -> list[dict[str, Any]]:
    out = []
    for r in table.rows:
        for key, header in table.value_columns:
            c = r.cells.get(key)
            if c is None or c.value is None:
                continue
            rec = c.record or {}
            out.append({
                "table": table.key, "title": table.title, "kind": r.kind, "model": r.labels.get("model", ""),
                "source": r.labels.get("source", ""), "protocol": r.labels.get("protocol", ""),
                "settings": r.labels.get("settings", ""), "k": r.labels.get("k", ""), "vs_paper": r.labels.get("vs", ""),
                "dataset": c.dataset or r.labels.get("dataset", ""), "column": header,
                "value": round(c.value, 6), "ci_lo": None if c.ci is None else round(c.ci[0], 6),
                "ci_hi": None if c.ci is None else round(c.ci[1], 6),
                "delta": None if c.delta is None else round(c.delta, 6), "paper": c.paper,
                "runs": c.runs if r.kind == "run" else None,
                "record": rec.get("file", ""), "protocol_hash": rec.get("protocol_hash", ""),
                "weights": rec.get("weights", ""), "commit": rec.get("commit", "")})
    return out


def render_csv(tables: list[Table], interval: str = "pm") -> str:
    """Tidy CSV, one line per number: numbers are written as numbers (``-0.46`` stays a number), every text cell
    is neutralised against spreadsheet formulas (:func:`escape.csv_text`)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for t in tables:
        for row in _csv_rows(t, interval):
            w.writerow([_csv_cell(row[f]) for f in CSV_FIELDS])
    return buf.getvalue()


def _csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v
    return E.csv_text(v)


def _latex(table: Table, interval: str) -> str:
    esc = E.latex
    n_lab, n_val = len(table.label_columns), len(table.value_columns)
    lines = [f"% {esc(table.title)}", r"\begin{table}[t]", r"\centering", r"\small",
             f"\\caption{{{esc(table.title)}}}", f"\\begin{{tabular}}{{{'l' * n_lab}{'r' * n_val}}}", r"\toprule",
             " & ".join(esc(h) for h in table.headers) + r" \\", r"\midrule"]
    prev = None
    for r in table.rows:
        if prev is not None and r.kind != prev:
            lines.append(r"\midrule")
        prev = r.kind
        lines.append(" & ".join([esc(r.labels.get(k, "")) for k, _ in table.label_columns] +
                                [cell_text(r.cells.get(k), "latex", interval) for k, _ in table.value_columns]) + r" \\")
    if not table.rows:
        lines.append(f"\\multicolumn{{{n_lab + n_val}}}{{l}}{{(no rows)}} \\\\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    notes = notes_of(table)
    if notes:
        lines.append(r"\par\smallskip\footnotesize " + r" \\ ".join(esc(n) for n in notes))
    lines += [r"\end{table}", ""]
    return "\n".join(lines)


