"""The package has no import cycles: no two satbench modules import each other, directly or through others, at module
level, inside a function or under ``if TYPE_CHECKING:`` (a function-level or type-only import hides a cycle from
Python, not from the design); a package importing its own children is fine. And every import between the package's
rooms (``satbench/<room>/`` or ``satbench/<room>.py``) runs in a direction the table in docs/architecture.md allows."""

from __future__ import annotations

import ast
from pathlib import Path

from support.paths import REPO

PACKAGE = REPO / "satbench"


def _modules(root: Path) -> dict[str, Path]:
    mods = {}
    for p in root.rglob("*.py"):
        name = ".".join(p.relative_to(root.parent).with_suffix("").parts)
        mods[name[: -len(".__init__")] if name.endswith(".__init__") else name] = p
    return mods


def _targets(mods: dict[str, Path], cur: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    pkg = cur if mods[cur].name == "__init__.py" else cur.rsplit(".", 1)[0]
    if node.level:
        base = pkg.split(".")
        base = base[: len(base) - (node.level - 1)]
        mod = ".".join(base + ([node.module] if node.module else []))
    else:
        mod = node.module or ""
    return [f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod for a in node.names]


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the satbench modules it imports anywhere in its file (TYPE_CHECKING blocks and functions included)."""
    mods = _modules(root)
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        tree = ast.parse(p.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for t in _targets(mods, m, node):
                while t and t not in mods and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in mods and t != m and not m.startswith(t + "."):
                    edges[m].add(t)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_the_package_has_no_import_cycles():
    edges = import_graph()
    assert len(edges) > 100 and "satbench.records.results" in edges["satbench.eval.task_knn"]
    assert not any(m.startswith("satbench.records") for m in edges["satbench.eval.knn_run"])  # engines build no record
    found = cycles(edges)
    assert not found, f"import cycles (move the shared piece to a leaf module or invert the dependency): {found}"


def test_the_check_finds_function_level_cycles(tmp_path):
    pkg = tmp_path / "satbench"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import x\n")
    (pkg / "b.py").write_text("def f():\n    from .a import y\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .sub import d\n")
    (pkg / "sub" / "__init__.py").write_text("from . import d\n")
    (pkg / "sub" / "d.py").write_text("from ..c import z\n")
    assert cycles(import_graph(pkg)) == [["satbench.a", "satbench.b"], ["satbench.c", "satbench.sub.d"]]


ARCHITECTURE = REPO / "docs" / "architecture.md"


def allowed_imports(doc: Path = ARCHITECTURE) -> dict[str, set[str]]:
    """room -> the rooms it may import, from the table in docs/architecture.md (``every room``: all of them)."""
    rows: dict[str, str] = {}
    for line in doc.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 3:
            rows[cells[0].strip("`")] = cells[2]
    out = {}
    for room, cell in rows.items():
        if cell == "every room":
            out[room] = set(rows)
        else:
            out[room] = {r.strip().strip("`") for r in cell.split(",") if r.strip() not in ("", "—")}
    return out


def room_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layering_violations(edges: dict[str, set[str]], allowed: dict[str, set[str]]) -> list[str]:
    """Imports between rooms that the table does not allow, and rooms the table does not name."""
    bad = []
    for m, targets in sorted(edges.items()):
        src = room_of(m)
        if not src:
            continue  # satbench/__init__.py: the public names, resolved lazily through api
        if src not in allowed:
            bad.append(f"{m}: room {src!r} is not in the table of docs/architecture.md")
            continue
        for t in sorted(targets):
            dst = room_of(t)
            if dst and dst != src and dst not in allowed[src]:
                bad.append(f"{m} imports {t} ({src} may import: {', '.join(sorted(allowed[src])) or 'nothing'})")
    return bad


def test_rooms_import_only_what_the_architecture_table_allows():
    allowed = allowed_imports()
    assert {"models", "records", "io", "config", "runtime", "eval", "cli"} <= set(allowed)
    assert "eval" not in allowed["models"] and "cli" not in allowed["suite"] and allowed["errors"] == set()
    found = layering_violations(import_graph(), allowed)
    assert not found, "imports against docs/architecture.md (move the piece down, or invert the dependency):\n" + \
        "\n".join(found)


def test_the_table_is_a_strict_order():
    """Read as a graph, the table itself has no circle: a room never may import one that may import it back."""
    allowed = allowed_imports()
    edges = {r: {d for d in ds if d != r} for r, ds in allowed.items() if r != "cli"}
    assert not cycles(edges)


def test_the_layering_check_catches_a_sibling_import(tmp_path):
    pkg = tmp_path / "satbench"
    for room in ("io", "eval"):
        (pkg / room).mkdir(parents=True)
        (pkg / room / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "io" / "atomic.py").write_text("def f():\n    from satbench.eval.knn import g\n")
    (pkg / "eval" / "knn.py").write_text("from satbench.io.atomic import f\n")
    (pkg / "extra.py").write_text("")
    allowed = {"io": set(), "eval": {"io"}}
    assert layering_violations(import_graph(pkg), allowed) == [
        "satbench.extra: room 'extra' is not in the table of docs/architecture.md",
        "satbench.io.atomic imports satbench.eval.knn (io may import: nothing)"]
