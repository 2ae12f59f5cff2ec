"""The one YAML loader satbench uses (protocols, model cards, pretraining configs and ``--set`` values): bounded.

``yaml.safe_load`` executes nothing, but it happily builds a "billion laughs" document: a few hundred bytes of nested
aliases (``&a [*b, *b, ...]``) become shared Python objects that expand to gigabytes as soon as they are hashed or
written into a record. :func:`load_yaml` parses exactly as ``yaml.safe_load`` (same loader, same values, so protocol
hashes do not change) after checking the composed document:

* at most :data:`MAX_YAML_BYTES` of text and :data:`MAX_YAML_NODES` nodes written out (shipped protocols and cards
  have a few hundred);
* alias expansion may add at most :data:`MAX_ALIAS_NODES` nodes beyond those written out (plain anchors and aliases for
  sharing a value stay usable); a recursive alias (a node containing itself) is refused;
* at most :data:`MAX_YAML_DEPTH` levels of nesting (counted after alias expansion).

A violation is one error line naming the file (or ``--set`` key) and the limit.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import yaml

from satbench.errors import SatbenchError
from satbench.io.bounded import human_bytes, read_bytes_or_fail

T = TypeVar("T")

MAX_YAML_BYTES = 1 << 20
MAX_ALIAS_NODES = 10_000
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 20_000


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_node(root: yaml.Node, where: str, error: type[SatbenchError] = SatbenchError) -> None:
    """Refuse a composed YAML document whose alias expansion or nesting exceeds the limits (no recursion)."""
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        kids = _children(node)
        if done:
            size[key] = 1 + sum(size[id(c)] for c in kids)
            height[key] = 1 + max((height[id(c)] for c in kids), default=0)
            on_path.discard(key)
            if height[key] > MAX_YAML_DEPTH:
                raise error(f"{where}: YAML nested deeper than {MAX_YAML_DEPTH} levels")
            if size[key] - len(size) > MAX_ALIAS_NODES:
                raise error(f"{where}: YAML aliases expand to more than {MAX_ALIAS_NODES} extra nodes "
                            f"(an alias bomb?); write the values out")
            continue
        if key in size:
            continue
        on_path.add(key)
        stack.append((node, True))
        for c in kids:
            if id(c) in on_path:
                raise error(f"{where}: YAML alias refers to a node that contains it (a recursive structure)")
            if id(c) not in size:
                stack.append((c, False))


def check_events(text: str, where: str, error: type[SatbenchError] = SatbenchError) -> None:
    """Refuse ``text`` with more than :data:`MAX_YAML_NODES` nodes or collections nested deeper than
    :data:`MAX_YAML_DEPTH`, reading only as far as needed.

    A pass over the parser's events that stops at the first violation: PyYAML's scanner is quadratic in the flow
    nesting depth (a megabyte of ``[`` would take hours), its composer recursive, and it builds about 5000 nodes a
    second on a busy CPU."""
    depth = 0
    for n, event in enumerate(yaml.parse(text, Loader=yaml.SafeLoader)):
        if n > MAX_YAML_NODES:
            raise error(f"{where}: YAML document has more than {MAX_YAML_NODES} nodes")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise error(f"{where}: YAML nested deeper than {MAX_YAML_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def load_yaml(text: str, where: str, error: type[SatbenchError] = SatbenchError) -> Any:
    """``yaml.safe_load(text)`` within the limits above. YAML syntax errors propagate as ``yaml.YAMLError`` (callers
    word them); limits raise ``error("<where>: ...")``."""
    if len(text) > MAX_YAML_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_YAML_BYTES:
        raise error(f"{where} is larger than the {human_bytes(MAX_YAML_BYTES)} a YAML input may be")
    check_events(text, where, error)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_node(node, where, error)
        return loader.construct_document(node)
    except RecursionError:
        raise error(f"{where}: YAML nested deeper than {MAX_YAML_DEPTH} levels") from None
    finally:
        loader.dispose()


def read_yaml_text(path: str | os.PathLike, what: str, error: type[SatbenchError] = SatbenchError) -> str:
    """The text of the YAML file ``path``: a regular file (a FIFO or device is never opened for reading) of at most
    :data:`MAX_YAML_BYTES`, UTF-8. Problems are ``error("<what> <path> ...")``."""
    data = read_bytes_or_fail(path, MAX_YAML_BYTES, lead=f"{what} {path}", error=error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_yaml(path: str | os.PathLike, *, what: str = "YAML file", error: type[SatbenchError] = SatbenchError) -> Any:
    """Parse a small YAML file satbench did not write (protocol, card, dataset spec, config): bounded in size, nodes,
    alias expansion and depth (:mod:`satbench.config.yamlio`); problems raise ``error`` naming the file."""
    text = read_yaml_text(path, what, error)
    try:
        return load_yaml(text, f"{what} {path}", error)
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise error(f"{what} {path} is not valid YAML: {first}") from None


def search_folders(shipped: Path, env: str, what: str, error: type[SatbenchError] = SatbenchError) -> list[Path]:
    """``shipped``, then the folders listed in ``$env`` (``os.pathsep``-separated); a listed path that is not a folder
    is one ``error`` line naming the variable (the one rule for model cards, protocols and dataset specs)."""
    extra = [Path(p) for p in os.environ.get(env, "").split(os.pathsep) if p]
    for p in extra:
        if not p.is_dir():
            raise error(f"${env} names {p}, which is not a folder of {what}")
    return [Path(shipped), *extra]


def read_folder(folder: str | os.PathLike, read: Callable[[Path], T], patterns: Sequence[str] = ("*.yaml",), *,
                strict: bool = False) -> tuple[list[T], list[tuple[str, str]]]:
    """``read`` applied to each file of ``folder`` matching ``patterns`` (sorted per pattern): ``(items, problems)``,
    a problem being ``(file, one-line message)`` of a file whose ``read`` raised a :class:`SatbenchError`. With
    ``strict`` the first such error is raised instead (protocols: a bad protocol file stops the run)."""
    items: list[T] = []
    problems: list[tuple[str, str]] = []
    for pattern in patterns:
        for path in sorted(Path(folder).glob(pattern)):
            try:
                items.append(read(path))
            except SatbenchError as exc:
                if strict:
                    raise
                problems.append((str(path), str(exc)))
    return items, problems
