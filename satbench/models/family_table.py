"""``satbench models --families``: every backbone family, how to name its models, and whether what it needs is installed.

The listing comes from the family registry (:data:`satbench.models.backbones.FAMILIES`) without importing torch: each
module of ``satbench/models/backbones/`` that calls ``register_family(Family(...))`` is read as source (``ast``), and
the family's name and its ``name_prefix`` / ``naming`` / ``about`` / ``extra`` / ``requires`` fields are taken from
the call (literals, or module-level string constants such as ``PREFIX = "timm:"``). A new family module appears
with no other change. When a family's fields are not literals, or a ``$SATBENCH_PLUGINS`` module is configured (it
may register families of its own), the registry itself is imported (torch, a few seconds). The "installed" column
checks each required top-level module with :func:`importlib.util.find_spec` (located, never imported).
``tests/models/test_family_table.py`` checks the read-from-source listing against the imported registry.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from typing import Any, Optional

BACKBONES_DIR = Path(__file__).with_name("backbones")
FIELDS = ("name_prefix", "naming", "about", "extra", "requires")


def entry(name: str, name_prefix: str = "", naming: str = "", about: str = "", extra: str = "",
          requires: Any = ()) -> dict[str, Any]:
    """One family's listing entry (what it is, how to name its models, what it needs); the cards are added later."""
    if not naming:
        naming = f"{name_prefix}<name>" if name_prefix else f"a model card of family {name}"
    return {"family": name, "prefix": name_prefix, "naming": naming, "about": about, "extra": extra,
            "requires": [str(r) for r in requires]}


def _constants(tree: ast.Module) -> dict[str, Any]:
    """Module-level ``NAME = <literal>`` assignments."""
    out: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return out


class _NotLiteral(Exception):
    pass


def _value(node: ast.AST, consts: dict[str, Any]) -> Any:
    if isinstance(node, ast.Name) and node.id in consts:
        return consts[node.id]
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise _NotLiteral() from None


def _is_call(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Name) and node.func.id == name) or
        (isinstance(node.func, ast.Attribute) and node.func.attr == name))


def families_in_source(path: Path) -> Optional[list[dict[str, Any]]]:
    """The entries of the families a module registers, read from its source; None when one cannot be read so."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    consts = _constants(tree)
    out = []
    for node in ast.walk(tree):
        if not _is_call(node, "register_family"):
            continue
        fam = node.args[0] if node.args else None
        if not _is_call(fam, "Family"):
            return None
        try:
            name_node = fam.args[0] if fam.args else next(k.value for k in fam.keywords if k.arg == "name")
            fields = {k.arg: _value(k.value, consts) for k in fam.keywords if k.arg in FIELDS}
            out.append(entry(str(_value(name_node, consts)), **fields))
        except (_NotLiteral, StopIteration):
            return None
    return out


def source_entries() -> Optional[list[dict[str, Any]]]:
    """Every built-in family read from ``backbones/*.py`` (sorted by name), or None when one needs an import."""
    out: list[dict[str, Any]] = []
    for path in sorted(BACKBONES_DIR.glob("*.py")):
        found = families_in_source(path)
        if found is None:
            return None
        out.extend(found)
    return sorted(out, key=lambda e: e["family"])


def registry_entries() -> list[dict[str, Any]]:
    """Every registered family, plug-ins included (imports the registry: torch)."""
    from satbench.models.backbones import FAMILIES
    from satbench.runtime.plugins import load_plugins

    load_plugins()
    return [entry(f.name, f.name_prefix, f.naming, f.about, f.extra, f.requires)
            for f in sorted(FAMILIES.values(), key=lambda f: f.name)]


def family_entries() -> list[dict[str, Any]]:
    """The torch-free listing when it applies (no plug-ins, every family readable from source), else the registry's."""
    from satbench.runtime.plugins import plugin_modules

    entries = None if plugin_modules() else source_entries()
    return entries if entries is not None else registry_entries()


def installed(requires: list[str]) -> tuple[bool, list[str]]:
    """``(all found, the missing ones)``: each top-level module located with :func:`importlib.util.find_spec`."""
    missing = []
    for mod in requires:
        try:
            found = importlib.util.find_spec(mod.split(".")[0]) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(mod)
    return not missing, missing


def family_rows(entries: Optional[list[dict[str, Any]]] = None, cards: Optional[list[Any]] = None) -> list[dict[str, Any]]:
    """One row per family: name, how to name its models (with the registered cards of a card family), what it is, the
    extra that installs it and whether it is installed."""
    if entries is None:
        entries = family_entries()
    if cards is None:
        from satbench.models.model_table import registered_cards

        cards = registered_cards()[0]
    rows = []
    for e in entries:
        ok, missing = installed(e["requires"])
        names = [c.name for c in cards if c.family == e["family"]]
        naming = e["naming"] if e["prefix"] or not names else f"{e['naming']}: {', '.join(names)}"
        install = f"pip install 'satbench[{e['extra']}]'" if e["extra"] else "satbench's own dependencies"
        rows.append({"family": e["family"], "models": naming, "about": e["about"], "extra": e["extra"] or "-",
                     "installed": "yes" if ok else f"no ({', '.join(missing)} missing: {install})"})
    return rows
