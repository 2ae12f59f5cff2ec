"""Protocols as data: ``tasks/<task>/<name>.yaml`` loaded, validated, frozen and hashed.

A protocol's hash is the sha256 of its canonical JSON content. Command-line overrides (``--scales``,
``--k``...) produce an *effective* protocol whose content, hash and overrides are all recorded.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from .errors import ProtocolError, UnknownNameError, close_matches
from .io import canonical_hash
from .resources import tasks_dir
from .yamlio import load_yaml, read_yaml_text


@dataclass(frozen=True)
class Protocol:
    """A named, hashed set of evaluation settings."""

    name: str
    task: str
    content: dict[str, Any]
    path: str = ""
    base_hash: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        """sha256 of the effective content (after overrides)."""
        return canonical_hash(self.content)

    @property
    def params(self) -> dict[str, Any]:
        return self.content.get("params", {})

    def get(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)

    def with_overrides(self, **overrides: Any) -> "Protocol":
        """A copy whose params are updated with the non-None ``overrides`` (recorded)."""
        ov = {k: v for k, v in overrides.items() if v is not None}
        if not ov:
            return self
        unknown = sorted(set(ov) - set(self.params))
        if unknown:
            raise ProtocolError(f"protocol {self.name} has no parameter(s) {', '.join(unknown)} to override")
        content = copy.deepcopy(self.content)
        content["params"].update(copy.deepcopy(ov))
        return Protocol(self.name, self.task, content, self.path, self.base_hash, {**self.overrides, **ov})

    def as_record(self) -> dict[str, Any]:
        """The protocol as stored in a result record."""
        return {"name": self.name, "task": self.task, "hash": self.hash, "base_hash": self.base_hash,
                "overrides": self.overrides, "content": self.content}


def _read(path: Path) -> Protocol:
    text = read_yaml_text(path, "protocol file", ProtocolError)
    try:
        data = load_yaml(text, f"protocol file {path}", ProtocolError)
    except yaml.YAMLError as exc:
        raise ProtocolError(f"protocol file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not {"name", "task", "params"} <= set(data):
        raise ProtocolError(f"protocol file {path} must be a mapping with name, task and params")
    if path.stem != data["name"]:
        raise ProtocolError(f"protocol file {path} declares name {data['name']!r}; the file must be named {data['name']}.yaml")
    if not isinstance(data["params"], dict):
        raise ProtocolError(f"protocol file {path}: params must be a mapping")
    h = canonical_hash(data)
    return Protocol(data["name"], data["task"], data, str(path), h)


@lru_cache(maxsize=None)
def _all(folder: str) -> dict[str, Protocol]:
    out: dict[str, Protocol] = {}
    for path in sorted(Path(folder).glob("*/*.yaml")):
        if path.parent.name == "segmentation":  # mmseg configs live there, not protocols
            continue
        p = _read(path)
        if p.name in out:
            raise ProtocolError(f"protocol name {p.name!r} is defined twice ({out[p.name].path}, {path})")
        out[p.name] = p
    return out


def list_protocols(task: str | None = None) -> list[Protocol]:
    """All shipped protocols (optionally of one task), sorted by name."""
    return [p for p in _all(str(tasks_dir())).values() if task is None or p.task == task]


def load_protocol(name_or_path: str, task: str | None = None) -> Protocol:
    """A protocol by name (from ``tasks/``) or from a YAML path; checks its task when given."""
    path = Path(name_or_path)
    if name_or_path.endswith((".yaml", ".yml")) and path.is_file():
        proto = _read(path)
    else:
        protos = _all(str(tasks_dir()))
        if name_or_path not in protos:
            names = sorted(p.name for p in protos.values() if task is None or p.task == task)
            raise UnknownNameError(f"unknown protocol {name_or_path!r}{close_matches(name_or_path, names)}; known: {', '.join(names)}")
        proto = protos[name_or_path]
    if task is not None and proto.task != task:
        raise ProtocolError(f"protocol {proto.name} is for task {proto.task!r}, not {task!r}")
    return proto
