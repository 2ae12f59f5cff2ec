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

from satbench.errors import ProtocolError, UnknownNameError, close_matches
from satbench.io.hashing import canonical_hash
from satbench.runtime.resources import tasks_dir
from satbench.config.yamlio import read_folder, read_yaml, search_folders


@dataclass(frozen=True)
class Protocol:
    """A named, hashed set of evaluation settings."""

    name: str
    task: str
    content: dict[str, Any]
    path: str = ""
    base_hash: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)
    #: The params as the file gives them (before any override): :meth:`settings` checks these first.
    file_params: dict[str, Any] | None = field(default=None, compare=False, repr=False)

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
            return self  # unknown keys are refused by the task's typed settings (Protocol.settings), with close matches
        content = copy.deepcopy(self.content)
        content["params"].update(copy.deepcopy(ov))
        file_params = self.file_params if self.file_params is not None else copy.deepcopy(self.params)
        return Protocol(self.name, self.task, content, self.path, self.base_hash, {**self.overrides, **ov},
                        file_params)

    def settings(self, cls: type) -> Any:
        """The protocol's ``params`` as the typed settings ``cls`` (strict: one line naming the file and the key).

        With overrides, the file's own params are checked first: a protocol file must be valid on its own, so an
        override never hides a bad value in the file whose hash the record carries as ``base_hash``."""
        from satbench.config.settings import load_settings

        where = f"protocol {self.name}" + (f" ({self.path})" if self.path else "")
        if self.overrides and self.file_params is not None:
            load_settings(cls, self.file_params, where)
        if self.overrides:
            where += " with overrides " + ", ".join(sorted(self.overrides))
        return load_settings(cls, self.params, where)

    def as_record(self) -> dict[str, Any]:
        """The protocol as stored in a result record (copies: a record never aliases the loaded protocol)."""
        return copy.deepcopy({"name": self.name, "task": self.task, "hash": self.hash, "base_hash": self.base_hash,
                              "overrides": self.overrides, "content": self.content})


TOP_LEVEL_KEYS = ("name", "task", "version", "description", "params")


def _read(path: Path) -> Protocol:
    data = read_yaml(path, what="protocol file", error=ProtocolError)
    if not isinstance(data, dict) or not {"name", "task", "params"} <= set(data):
        raise ProtocolError(f"protocol file {path} must be a mapping with name, task and params")
    unknown = [k for k in data if k not in TOP_LEVEL_KEYS]
    if unknown:
        raise ProtocolError(f"protocol file {path}: unknown top-level key {unknown[0]}{close_matches(str(unknown[0]), list(TOP_LEVEL_KEYS))} "
                            f"(settings go under params:)")
    for key in ("name", "task"):
        if not isinstance(data[key], str) or not data[key]:
            raise ProtocolError(f"protocol file {path}: {key} must be a non-empty string")
    if path.stem != data["name"]:
        raise ProtocolError(f"protocol file {path} declares name {data['name']!r}; the file must be named {data['name']}.yaml")
    if not isinstance(data["params"], dict):
        raise ProtocolError(f"protocol file {path}: params must be a mapping")
    version = data.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ProtocolError(f"protocol file {path}: version is {version!r}, expected a positive integer (e.g. 1)")
    if not isinstance(data.get("description", ""), str):
        raise ProtocolError(f"protocol file {path}: description must be a string")
    h = canonical_hash(data)
    return Protocol(data["name"], data["task"], data, str(path), h)


@lru_cache(maxsize=None)
def _in_folder(folder: str) -> tuple[Protocol, ...]:
    # tasks/<task>/<name>.yaml (tasks/segmentation/*.py are mmseg configs, not protocols), or <folder>/<name>.yaml
    return tuple(read_folder(folder, _read, ("*/*.yaml", "*.yaml"), strict=True)[0])


def protocol_folders() -> list[Path]:
    """The shipped ``tasks/`` folder, then the folders in ``$SATBENCH_PROTOCOLS`` (os.pathsep-separated)."""
    return search_folders(tasks_dir(), "SATBENCH_PROTOCOLS", "protocol files", ProtocolError)


def _all(_unused: str = "") -> dict[str, Protocol]:
    out: dict[str, Protocol] = {}
    for folder in protocol_folders():
        for p in _in_folder(str(folder)):
            if p.name in out:
                raise ProtocolError(f"protocol name {p.name!r} is defined twice ({out[p.name].path}, {p.path})")
            out[p.name] = p
    return out


def list_protocols(task: str | None = None) -> list[Protocol]:
    """All protocols (shipped and ``$SATBENCH_PROTOCOLS``; optionally of one task), sorted by name."""
    return sorted((p for p in _all().values() if task is None or p.task == task), key=lambda p: p.name)


def load_protocol(name_or_path: str, task: str | None = None) -> Protocol:
    """A protocol by name (from ``tasks/``) or from a YAML path; checks its task when given."""
    path = Path(name_or_path)
    if name_or_path.endswith((".yaml", ".yml")) and path.is_file():
        proto = _read(path)
    else:
        protos = _all()
        if name_or_path not in protos:
            names = sorted(p.name for p in protos.values() if task is None or p.task == task)
            raise UnknownNameError(f"unknown protocol {name_or_path!r}{close_matches(name_or_path, names)}; known: {', '.join(names)}")
        proto = protos[name_or_path]
    if task is not None and proto.task != task:
        raise ProtocolError(f"protocol {proto.name} is for task {proto.task!r}, not {task!r}")
    return proto
