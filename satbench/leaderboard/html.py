"""One self-contained HTML page: every table, inline CSS, the plots as data URIs, each run cell linked to its record's
provenance on the same page, sortable columns (a few lines of plain JS). No network: no CDN, no external file.
Every string passes :func:`satbench.leaderboard.escape.html`."""

from __future__ import annotations

import base64
import json
from typing import Any, Optional

from satbench._version import __version__
from satbench.leaderboard import escape as E
from satbench.leaderboard.cells import cell_text, notes_of
from satbench.leaderboard.layout import Table


def own_columns(table: Table) -> set[str]:
    """The value columns holding a run's number (the runs' own datasets)."""
    return {k for r in table.rows if r.kind == "run" for k, c in r.cells.items() if c is not None and c.value is not None}


def run_columns_first(table: Table) -> list[tuple[str, str]]:
    """The value columns with the runs' own datasets first (:func:`own_columns`, in table order), then the columns
    only papers fill: on a narrow page a user's own dataset is never the column scrolled out of view."""
    own = own_columns(table)
    return [c for c in table.value_columns if c[0] in own] + [c for c in table.value_columns if c[0] not in own]


def html_section(table: Table, interval: str = "pm", anchors: Optional[dict[str, str]] = None) -> str:
    """A ``<section>`` with the table (sortable headers, numeric sort keys) and its notes; run cells link to
    ``anchors[record file]`` when given (the record details on the page). The runs' own dataset columns come first
    (:func:`run_columns_first`, marked ``own``)."""
    esc = E.html
    values = run_columns_first(table)
    own = own_columns(table)
    out = [f'<section class="lb-table" id="t-{esc(table.key)}">', f"<h2>{esc(table.title)}</h2>",
           '<div class="scroll"><table class="lb sortable">', "<thead><tr>"]
    for _, h in table.label_columns:
        out.append(f'<th class="lab" scope="col" tabindex="0">{esc(h)}</th>')
    for k, h in values:
        cls = "num own" if k in own else "num"
        out.append(f'<th class="{cls}" scope="col" tabindex="0">{esc(h)}</th>')
    out.append("</tr></thead><tbody>")
    for r in table.rows:
        out.append(f'<tr class="{esc(r.kind)}">')
        for k, _ in table.label_columns:
            out.append(f'<td class="lab-{esc(k)}">{esc(r.labels.get(k, ""))}</td>')
        for k, _ in values:
            c = r.cells.get(k)
            text = cell_text(c, "html", interval)
            if c is None or c.value is None:
                out.append('<td class="num empty" data-sort=""></td>')
                continue
            inner = esc(text)
            if c.delta is not None:
                cls = "pos" if c.delta >= 0 else "neg"
                inner = esc(text.split(" (")[0]) + f' <span class="delta {cls}">({c.delta:+.2f})</span>'
            if c.record is not None:
                rec = c.record
                tip = (f"record {rec.get('file', '')}\nprotocol {rec.get('protocol', '')} {rec.get('protocol_hash', '')}"
                       f"\nweights {rec.get('weights', '')}\ncommit {rec.get('commit', '')}\ndate {rec.get('date', '')}")
                href = (anchors or {}).get(rec.get("file", ""))
                inner = (f'<a href="#{esc(href)}" title="{esc(tip)}">{inner}</a>' if href
                         else f'<span title="{esc(tip)}">{inner}</span>')
            out.append(f'<td class="num" data-sort="{c.value!r}">{inner}</td>')
        out.append("</tr>")
    if not table.rows:
        out.append(f'<tr><td colspan="{len(table.headers)}">(no rows)</td></tr>')
    out.append("</tbody></table></div>")
    notes = notes_of(table)
    if notes:
        out.append('<ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    out.append("</section>")
    return "\n".join(out) + "\n"

CSS = """
:root { --fg:#1d232b; --muted:#5b6573; --line:#d5dbe3; --paper:#f3f0e6; --run:#ffffff; --head:#eef2f7; --pos:#1b7f3b;
        --neg:#b3261e; --link:#1f5fbf; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif;
       color: var(--fg); background: #fafbfc; }
header { padding: 22px 32px 12px; border-bottom: 1px solid var(--line); background: #fff; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: var(--muted); font-size: 13px; }
nav { margin-top: 10px; font-size: 13px; }
nav a { margin-right: 14px; }
main { padding: 8px 32px 40px; max-width: 1500px; }
section { margin: 26px 0; }
h2 { font-size: 17px; margin: 0 0 8px; }
.scroll { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; background: #fff; }
table.lb { border-collapse: collapse; width: 100%; font-size: 13px; }
table.lb th, table.lb td { border-bottom: 1px solid var(--line); padding: 6px 10px; vertical-align: top; }
table.lb th { background: var(--head); text-align: left; font-weight: 600; cursor: pointer; user-select: none;
              white-space: nowrap; position: sticky; top: 0; }
table.lb th.num, table.lb td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
table.lb th.num { white-space: normal; min-width: 6em; }
table.lb th.own { background: #e3ecf7; }
td.lab-model, td.lab-protocol, td.lab-hash, td.lab-k { white-space: nowrap; }
td.lab-source { min-width: 11em; }
td.lab-settings, td.lab-vs { min-width: 12em; max-width: 22em; }
td.lab-vs { color: #5b4a1f; }
td.lab-entry { min-width: 22em; }
table.lb th[aria-sort="ascending"]::after { content: " \\25B2"; font-size: 10px; }
table.lb th[aria-sort="descending"]::after { content: " \\25BC"; font-size: 10px; }
table.lb tr.paper td { background: var(--paper); color: #3a3320; }
table.lb tr.paper td:nth-child(2) { font-style: italic; }
table.lb tr.run td { background: var(--run); }
table.lb tr:hover td { background: #eaf2ff; }
td a { color: var(--link); text-decoration: none; border-bottom: 1px dotted var(--link); }
.delta { font-size: 12px; }
.delta.pos { color: var(--pos); }
.delta.neg { color: var(--neg); }
ul.notes { margin: 6px 0 0; padding-left: 18px; color: var(--muted); font-size: 12.5px; }
.legend span { display: inline-block; padding: 1px 8px; margin-right: 8px; border: 1px solid var(--line);
               border-radius: 4px; font-size: 12px; }
figure { margin: 10px 0; background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 12.5px; margin-top: 6px; }
.record { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; margin: 8px 0; }
.record:target { outline: 2px solid var(--link); }
.record dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 4px 0; font-size: 13px; }
.record dt { color: var(--muted); }
.record dd { margin: 0; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; word-break: break-all; }
pre { font-size: 11.5px; max-height: 360px; overflow: auto; background: #f6f8fa; padding: 8px; }
"""

# Sortable columns; window.onerror records any script error in <body data-js-error> (checked by the browser test).
JS = """
window.onerror = function (msg) { document.body.setAttribute('data-js-error', String(msg)); };
document.querySelectorAll('table.sortable').forEach(function (table) {
  var heads = table.querySelectorAll('th');
  heads.forEach(function (th, col) {
    function sort() {
      var asc = th.getAttribute('aria-sort') !== 'ascending';
      heads.forEach(function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col], y = b.cells[col];
        if (!x || !y) return 0;
        var xs = x.getAttribute('data-sort'), ys = y.getAttribute('data-sort');
        if (xs !== null && ys !== null) {
          if (xs === '') return 1; if (ys === '') return -1;
          return asc ? parseFloat(xs) - parseFloat(ys) : parseFloat(ys) - parseFloat(xs);
        }
        var c = x.textContent.localeCompare(y.textContent);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    }
    th.addEventListener('click', sort);
    th.addEventListener('keydown', function (e) { if (e.key === 'Enter') sort(); });
  });
});
document.body.setAttribute('data-ready', '1');
"""

_RECORD_FIELDS = (("file", "record file"), ("id", "id"), ("date", "date"), ("protocol", "protocol"),
                  ("protocol_hash", "protocol hash"), ("weights", "weights sha256 (file)"), ("tensors", "weights tensors sha256"),
                  ("commit", "commit"), ("calibration", "calibration"))


def page(tables: list[Table], *, interval: str = "pm", plots: Optional[list[tuple[str, bytes]]] = None,
         records: Optional[list[dict[str, Any]]] = None, title: str = "satbench leaderboard",
         subtitle: str = "") -> str:
    """The whole page as a string. ``plots``: ``(caption, PNG bytes)``; ``records``: full records whose JSON is
    shown in the provenance section (cells link there)."""
    esc = E.html
    cited: dict[str, dict[str, str]] = {}
    for t in tables:
        for r in t.rows:
            for c in r.cells.values():
                if c.record is not None:
                    cited.setdefault(c.record.get("file", ""), c.record)
    anchors = {f: f"rec-{i}" for i, f in enumerate(cited)}
    full = {str(r.get("_path", "")): r for r in (records or [])}
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{esc(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>", "<header>",
             f"<h1>{esc(title)}</h1>", f"<p>{esc(subtitle)}</p>" if subtitle else "",
             '<p class="legend"><span style="background:var(--paper)">paper (published number)</span>'
             '<span>satbench run (cell links to its record)</span></p>', "<nav>"]
    parts += [f'<a href="#t-{esc(t.key)}">{esc(t.title)}</a>' for t in tables]
    if plots:
        parts.append('<a href="#plots">plots</a>')
    if cited:
        parts.append('<a href="#records">records</a>')
    parts += ["</nav>", "</header>", "<main>"]
    parts += [html_section(t, interval, anchors) for t in tables]
    if plots:
        parts.append('<section id="plots"><h2>Plots</h2>')
        for caption, png in plots:
            data = base64.b64encode(png).decode("ascii")
            parts.append(f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{esc(caption)}</figcaption></figure>")
        parts.append("</section>")
    if cited:
        parts.append('<section id="records"><h2>Records</h2>')
        for f, rec in cited.items():
            parts.append(f'<div class="record" id="{esc(anchors[f])}"><dl>')
            parts += [f"<dt>{esc(label)}</dt><dd>{esc(rec.get(k, ''))}</dd>" for k, label in _RECORD_FIELDS]
            parts.append("</dl>")
            if f in full:
                body = {k: v for k, v in full[f].items() if not k.startswith("_")}
                parts.append("<details><summary>full record</summary><pre>"
                             f"{esc(json.dumps(body, indent=1, default=str))}</pre></details>")
            parts.append("</div>")
        parts.append("</section>")
    parts += ["</main>", f'<footer style="padding:0 32px 24px;color:#5b6573;font-size:12px">satbench {esc(__version__)}'
              "</footer>", f"<script>{JS}</script>", "</body>", "</html>", ""]
    return "\n".join(p for p in parts if p != "")
