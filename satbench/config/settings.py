"""Strict, typed settings from YAML/JSON mappings: the one loader for protocols, model cards and configs.

A settings type is a frozen dataclass whose annotations say what each key holds. :func:`load_settings` builds it
from a mapping and refuses, with one line naming the file (``where``) and the key, anything that does not fit:
unknown keys (with close matches), missing required keys, wrong types (``int`` never accepts ``true`` or ``"16"``),
values outside a declared range, values not among a ``Literal``'s choices. Nothing is silently defaulted except what
the dataclass declares as a default.

Supported annotations: ``int``, ``float`` (ints accepted, must be finite), ``bool``, ``str``, ``Any``,
``Literal[...]``, ``Optional[X]``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``list[X]``, ``dict[str, X]`` and nested
settings dataclasses. Range constraints go in the field's metadata: ``field(default=1, metadata=gt(0))``.
A dataclass may define ``check(self, where) -> None`` for rules across fields.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, Mapping, TypeVar, Union

from satbench.errors import ProtocolError, SatbenchError, close_matches

T = TypeVar("T")
_MISSING = dataclasses.MISSING


def gt(bound: float) -> dict[str, Any]:
    """Field metadata: the value (or every element) must be > ``bound``."""
    return {"gt": bound}


def ge(bound: float) -> dict[str, Any]:
    """Field metadata: the value (or every element) must be >= ``bound``."""
    return {"ge": bound}


def between(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> dict[str, Any]:
    """Field metadata: ``lo <= value <= hi`` (``lo_open`` / ``hi_open`` make the ends exclusive)."""
    return {"gt" if lo_open else "ge": lo, "lt" if hi_open else "le": hi}


def nonempty() -> dict[str, Any]:
    """Field metadata: a list / tuple / mapping / string that must not be empty."""
    return {"nonempty": True}


def _short(value: Any, n: int = 80) -> str:
    r = repr(value)
    return r if len(r) <= n else r[: n - 3] + "..."


def describe_type(tp: Any) -> str:
    """A human name for an annotation (``a positive integer`` style names come from the metadata check)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return "any value"
    if tp in (int, float, bool, str):
        return {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}[tp.__name__]
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return " or ".join(describe_type(a) for a in inner) + (" or null" if len(inner) < len(args) else "")
    if origin in (tuple, list):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} values ({', '.join(describe_type(a) for a in args)})"
        return f"a list of {describe_type(args[0]) if args else 'values'}"
    if origin is dict:
        return f"a mapping of {describe_type(args[1]) if len(args) > 1 else 'values'}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _convert(tp: Any, value: Any, key: str, where: str, error: type[SatbenchError]) -> Any:
    """``value`` checked against annotation ``tp`` (YAML lists become tuples where the type says tuple)."""

    def bad() -> SatbenchError:
        return error(f"{where}: {key} must be {describe_type(tp)}, got {_short(value)}")

    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:  # Optional[X]: X's own error names what is wrong
            return _convert(inner[0], value, key, where, error)
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(a, value, key, where, error)
            except SatbenchError:
                continue
        raise bad()
    if origin is Literal:
        if value in args and not (isinstance(value, bool) and not any(isinstance(a, bool) for a in args)):
            return value
        raise bad()
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise bad()
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad()
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise bad()
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise bad()
            out = [_convert(a, v, f"{key}[{i}]", where, error) for i, (a, v) in enumerate(zip(args, value))]
        else:
            elem = args[0] if args else Any
            out = [_convert(elem, v, f"{key}[{i}]", where, error) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, Mapping):
            raise bad()
        kt, vt = (args + (Any, Any))[:2] if args else (Any, Any)
        return {_convert(kt, k, f"{key} key", where, error): _convert(vt, v, f"{key}.{k}", where, error)
                for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise bad()
        return load_settings(tp, value, where, prefix=f"{key}.", error=error)
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise bad()


def _check_range(meta: Mapping[str, Any], value: Any, key: str, where: str, error: type[SatbenchError]) -> None:
    if value is None:
        return
    if meta.get("nonempty") and hasattr(value, "__len__") and len(value) == 0:
        raise error(f"{where}: {key} must not be empty")
    items = value if isinstance(value, (list, tuple)) else [value]
    for v in items:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        for op, bound in meta.items():
            ok = {"gt": lambda: v > bound, "ge": lambda: v >= bound, "lt": lambda: v < bound,
                  "le": lambda: v <= bound}.get(op, lambda: True)()
            if not ok:
                sign = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}[op]
                what = "every value of " if isinstance(value, (list, tuple)) else ""
                raise error(f"{where}: {what}{key} must be {sign} {bound:g}, got {_short(value)}")


def load_settings(cls: type[T], data: Mapping[str, Any], where: str, *, prefix: str = "",
                  error: type[SatbenchError] = ProtocolError, ignore: tuple[str, ...] = ()) -> T:
    """Build the settings dataclass ``cls`` from ``data``; every problem is one ``error`` line naming ``where``.

    ``ignore`` lists keys of ``data`` that are not settings (e.g. a card's ``name`` handled by the caller).
    """
    if not isinstance(data, Mapping):
        raise error(f"{where}: {prefix.rstrip('.') or 'settings'} must be a mapping, got {_short(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = [k for k in data if k not in fields and k not in ignore]
    if unknown:
        k = str(unknown[0])
        raise error(f"{where}: unknown key {prefix}{k}{close_matches(k, list(fields))}"
                    + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""))
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = f"{prefix}{name}"
        if name not in data:
            if f.default is _MISSING and f.default_factory is _MISSING:  # type: ignore[misc]
                raise error(f"{where}: missing key {key} ({describe_type(hints[name])})")
            continue
        raw = data[name]
        if hints[name] is float and isinstance(raw, float) and not math.isfinite(raw):
            bounds = "".join(f" {sign} {f.metadata[op]:g}" for op, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"),
                                                                           ("le", "<=")) if op in f.metadata)
            raise error(f"{where}: {key} must be a finite number{bounds}, got {raw}")
        value = _convert(hints[name], raw, key, where, error)
        _check_range(f.metadata, value, key, where, error)
        kwargs[name] = value
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if callable(check):
        check(f"{where}: {prefix.rstrip('.')}" if prefix else where)
    return obj


def settings_as_dict(obj: Any) -> dict[str, Any]:
    """A settings dataclass as plain JSON-able data (tuples as lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(obj)
