"""Atomic file writes: temp file in the same folder, fsync, rename. A reader never sees half a file."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from .errors import ResultsError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, writer: Callable[[io.BufferedWriter], None], *, exclusive: bool = False) -> Path:
    """Write ``path`` atomically through ``writer(fileobj)``.

    With ``exclusive=True`` the final name must not exist yet (a run never overwrites another's file);
    the check-and-publish is a hard link, which fails atomically if the name was taken meanwhile.
    """
    path = Path(path)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise ResultsError(f"cannot write in {folder}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; published files get the usual permissions
        if exclusive:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise
            finally:
                os.unlink(tmp)
        else:
            os.replace(tmp, path)
        _fsync_dir(folder)
    except FileExistsError:
        raise
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise ResultsError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, exclusive: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda fh: fh.write(data), exclusive=exclusive)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, exclusive: bool = False) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    data = (json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n").encode()
    return atomic_write_bytes(path, data, exclusive=exclusive)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically."""
    import torch

    return atomic_write(path, lambda fh: torch.save(obj, fh))


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The hex sha256 of a file's bytes."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def canonical_hash(obj: Any) -> str:
    """sha256 of the canonical JSON form (sorted keys, no whitespace) of ``obj``."""
    data = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default).encode()
    return sha256_bytes(data)


MAX_YAML_BYTES = 1 << 20  # protocols, cards and configs are small; anything larger is refused


def read_yaml(path: str | os.PathLike, *, what: str = "YAML file", error: type[Exception] = ResultsError,
              max_bytes: int = MAX_YAML_BYTES) -> Any:
    """Parse a small YAML file satbench did not write (protocol, card, config): regular files only, at most
    ``max_bytes``, no anchors/aliases (no alias bombs), safe constructors only. Problems raise ``error`` naming it."""
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise error(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    import stat as _stat

    if not _stat.S_ISREG(st.st_mode):
        raise error(f"{what} {path} is not a regular file")
    if st.st_size > max_bytes:
        raise error(f"{what} {path} is {st.st_size} bytes; at most {max_bytes} are accepted")
    try:
        with open(path, "rb") as fh:
            text = fh.read(max_bytes + 1).decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{what} {path} is not UTF-8 text") from None
    except OSError as exc:
        raise error(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    return parse_yaml(text, f"{what} {path}", error=error)


def parse_yaml(text: str, where: str, *, error: type[Exception] = ResultsError) -> Any:
    """``yaml.safe_load`` of ``text`` with anchors and aliases refused (one ``error`` line naming ``where``)."""
    import yaml

    class _NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
            if self.check_event(yaml.events.AliasEvent):
                event = self.peek_event()
                raise error(f"{where}: YAML aliases (*{event.anchor}) are not accepted "
                            f"(line {event.start_mark.line + 1})")
            return super().compose_node(parent, index)

    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise error(f"{where} is not valid YAML: {first}") from None
    except RecursionError:
        raise error(f"{where}: YAML nested too deeply") from None
