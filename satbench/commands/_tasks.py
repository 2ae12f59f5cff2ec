"""Task plug-ins for ``satbench run``: each ``task_<name>.py`` module registers a :class:`TaskCLI`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable

TASKS: dict[str, "TaskCLI"] = {}


@dataclass
class TaskCLI:
    """name; add_arguments(group) adds the task's own options; run(args) -> exit code."""

    name: str
    help: str
    add_arguments: Callable[[argparse._ArgumentGroup], None]
    run: Callable[[argparse.Namespace], int]


def register_task(task: TaskCLI) -> TaskCLI:
    TASKS[task.name] = task
    return task
