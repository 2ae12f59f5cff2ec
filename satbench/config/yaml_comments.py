"""The comments of a YAML file's keys: the ``# ...`` lines right above each key of one top-level mapping (a protocol's
``params:``), joined into one line. YAML loaders drop comments, and a protocol's comments are where its parameters'
sources are written (``tasks/corruptions/reo-v2.yaml``); they are shown, never parsed as settings, and never part of
the protocol's hash (which is over the loaded content)."""

from __future__ import annotations

import re

_KEY = re.compile(r"^(?P<indent>[ ]+)(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)\s*:")
_TOP = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)\s*:")


def key_comments(text: str, section: str = "params") -> dict[str, str]:
    """``{key: comment}`` for the keys of the top-level mapping ``section`` that have comment lines directly above
    them (a blank line ends a comment); keys without one are absent. Only the mapping's own level is read (nested
    keys and flow values are left alone)."""
    out: dict[str, str] = {}
    inside, level = False, None
    pending: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        top = _TOP.match(line)
        if top:
            inside, level, pending = top.group("key") == section, None, []
            continue
        if not inside:
            continue
        if not stripped:
            pending = []
        elif stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
        else:
            m = _KEY.match(line)
            if m and (level is None or len(m.group("indent")) == level):
                level = len(m.group("indent"))
                if pending:
                    out[m.group("key")] = " ".join(p for p in pending if p)
            pending = []
    return out
