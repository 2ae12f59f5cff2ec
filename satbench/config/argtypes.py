"""Argument types for command-line options, validated at parse time (argparse shows a usage error naming the option).

Used by ``satbench.cli.commands`` and by the tasks' own options (``Task.add_arguments``).
"""

from __future__ import annotations

import argparse
import math

from satbench.runtime.device import DEVICE_CHOICES, is_device_spec

SEED_MAX = 2**32 - 1


def positive_int(value: str) -> int:
    """An integer > 0."""
    try:
        v = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return v


def nonnegative_int(value: str) -> int:
    """An integer >= 0."""
    try:
        v = int(value)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value!r}")
    return v


def positive_float(value: str) -> float:
    """A finite number > 0."""
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}") from None
    if not v > 0 or not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return v


def fraction(value: str) -> float:
    """A number in (0, 1]."""
    try:
        v = float(value)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and 0 < v <= 1):
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {value!r}")
    return v


def level(value: str) -> float:
    """An interval level: a number in (0, 1)."""
    try:
        v = float(value)
    except ValueError:
        v = math.nan
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"expected a level in (0, 1), got {value!r}")
    return v


def seed(value: str) -> int:
    """A random seed: an integer in 0 .. 2**32 - 1 (what numpy and torch accept)."""
    try:
        v = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed in 0..{SEED_MAX}, got {value!r}") from None
    if not 0 <= v <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"expected an integer seed in 0..{SEED_MAX}, got {value!r}")
    return v


def device(value: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (anything else, e.g. ``meta``, is refused; :mod:`satbench.runtime.device`)."""
    if not is_device_spec(value):
        raise argparse.ArgumentTypeError(f"expected {DEVICE_CHOICES}, got {value!r}")
    return value
