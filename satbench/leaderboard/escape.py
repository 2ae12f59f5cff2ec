"""One escaping layer per output format. Every string that reaches an output passes through exactly one of these.

Strings in records (model, dataset, protocol names, file paths, notes built from them) are untrusted: a dataset folder
may be named ``<img src=x onerror=alert(1)>`` or ``=HYPERLINK(...)``. Renderers never write a string without its
format's function here; numbers are formatted by the renderers themselves and never escaped as text.
"""

from __future__ import annotations

import html as _html
import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(s: object) -> str:
    """Terminal / plain text: one line, control characters (ANSI escapes, CR, NUL...) shown as ``\\xNN``."""
    text = str(s).replace("\r\n", " ").replace("\n", " ").replace("\t", " ")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def md(s: object) -> str:
    """GitHub markdown table cell / paragraph text: no ``|`` that splits a cell, no raw HTML, links or emphasis."""
    text = plain(s)
    out = []
    for ch in text:
        if ch in "\\|*`[]":
            out.append("\\" + ch)
        elif ch == "<":
            out.append("&lt;")
        elif ch == ">":
            out.append("&gt;")
        elif ch == "&":
            out.append("&amp;")
        else:
            out.append(ch)
    return "".join(out)


def html(s: object) -> str:
    """HTML text or attribute value (quotes escaped too)."""
    return _html.escape(str(s), quote=True)


_LATEX = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
    "|": r"\textbar{}", "\u0394": r"$\Delta$", "\u00b1": r"$\pm$", "\u2212": r"$-$", "\u2260": r"$\neq$",
    "\u00b7": r"$\cdot$", "\u2264": r"$\leq$", "\u2265": r"$\geq$", "\u2020": r"$^\dagger$", "\u2014": "---",
    "\u2013": "--",
}


def latex(s: object) -> str:
    """LaTeX text mode: the ten special characters, ``< > |`` and the few symbols satbench's notes use."""
    return "".join(_LATEX.get(ch, ch) for ch in plain(s))


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")


def csv_text(s: object) -> str:
    """A CSV *text* cell that a spreadsheet will not run as a formula: a leading ``= + - @`` (and tab / CR / ``|``
    / ``%``) gets a ``'`` in front (OWASP). Numbers are not text: the CSV writer emits them as numbers, unchanged,
    so a delta of -1.25 stays ``-1.25``."""
    text = str(s)
    return "'" + text if text.startswith(_FORMULA_START) else text
