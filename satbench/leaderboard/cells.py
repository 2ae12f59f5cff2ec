"""How one leaderboard number reads in each format (value, interval, latest-of-several mark, delta), and a table's
notes. Built from numbers only, so it needs no escaping; shared by every renderer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # pragma: no cover
    from satbench.leaderboard.layout import Cell, Table


def _num(v: float, fmt: str) -> str:
    s = f"{v:.2f}"
    return s.replace("-", "$-$", 1) if fmt == "latex" and s.startswith("-") else s


def cell_text(cell: Optional["Cell"], fmt: str = "plain", interval: str = "pm") -> str:
    """``85.50 ± 0.40* (-0.46)``: value, interval (``± half-width`` or ``[lo, hi]``), ``*`` when the latest of
    several runs, delta to the paper in brackets; a seeds / draws aggregate reads ``85.50 ± 0.40 (n=3)`` (mean ±
    sample std). Built from numbers only, so it needs no escaping."""
    if cell is None or cell.value is None:
        return ""
    out = _num(cell.value, fmt)
    spread = getattr(cell, "spread", None)
    if spread is not None:  # a seeds / draws aggregate: mean ± sample std (n)
        std, n, _ = spread
        out += (r" $\pm$ " if fmt == "latex" else " ± ") + ("-" if std is None else f"{std:.2f}") + f" (n={n})"
    elif cell.ci is not None:
        lo, hi = cell.ci
        if interval == "bracket":
            out += f" [{_num(lo, fmt)}, {_num(hi, fmt)}]"
        else:
            out += (r" $\pm$ " if fmt == "latex" else " ± ") + f"{(hi - lo) / 2:.2f}"
    if cell.runs > 1:
        out += "*"
    if cell.delta is not None:
        d = f"{cell.delta:+.2f}"
        out += f" ({d.replace('-', '$-$') if fmt == 'latex' else d})"
    return out




def notes_of(table: "Table") -> list[str]:
    """A table's notes, each once, in order."""
    return list(dict.fromkeys(table.notes))


def table_grid(table: "Table", interval: str = "pm") -> list[list[str]]:
    """A table's rows as plain, unescaped text (for tests and the terminal)."""
    return [[r.labels.get(k, "") for k, _ in table.label_columns] +
            [cell_text(r.cells.get(k), "plain", interval) for k, _ in table.value_columns] for r in table.rows]
