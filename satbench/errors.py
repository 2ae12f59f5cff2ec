"""The exception types satbench raises for bad input.

Every error a user can cause derives from :class:`SatbenchError`; the CLI prints its message as one line
and exits non-zero. Messages name the file, key or value at fault and what was expected.
"""

from __future__ import annotations


class SatbenchError(Exception):
    """Base class: a user-facing error whose message is one readable line."""

    exit_code = 2


class UnknownNameError(SatbenchError):
    """An unknown model, task, dataset or protocol name."""


class WeightsError(SatbenchError):
    """A weight file that is missing, unreadable, unsafe or does not fit the model."""


class DataError(SatbenchError):
    """A dataset folder, split file or image that is missing or malformed."""


class ProtocolError(SatbenchError):
    """A protocol file or override that is malformed."""


class InputSizeError(SatbenchError):
    """An input size the model (or its official code) does not accept."""


class ResultsError(SatbenchError):
    """A results folder that cannot be written or a record that cannot be read."""


def close_matches(name: str, choices: list[str], n: int = 3) -> str:
    """Return a ' (did you mean: a, b?)' hint for ``name`` among ``choices`` or ''."""
    import difflib

    matches = difflib.get_close_matches(name, choices, n=n, cutoff=0.4)
    if not matches:
        lowered = name.lower()
        matches = [c for c in choices if lowered in c.lower() or c.lower() in lowered][:n]
    return f" (did you mean: {', '.join(matches)}?)" if matches else ""


class CatalogError(SatbenchError):
    """A dataset spec file that is malformed."""


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` as one line. An error raised in a DataLoader worker comes back as
    "Caught X in DataLoader worker process N. Original Traceback ...": keep only the original message."""
    msg = str(exc).strip()
    if "Original Traceback" in msg:
        last = [ln for ln in msg.splitlines() if ln.strip()][-1].strip()
        prefix = f"{type(exc).__module__}.{type(exc).__name__}: "
        for p in (prefix, f"{type(exc).__name__}: "):
            if last.startswith(p):
                last = last[len(p):]
        return last
    return msg.splitlines()[0] if msg else ""
