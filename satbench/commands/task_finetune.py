"""``satbench run --task finetune``: full fine-tuning with a linear head (``satdino-finetune-v1``).

Shares its options and body with ``--task linear`` (:mod:`satbench.commands.task_linear`).
"""

from __future__ import annotations

from ._tasks import TaskCLI, register_task
from .task_linear import add_train_arguments, run_task

register_task(TaskCLI(
    "finetune",
    "fine-tune the whole backbone with a linear head (satdino-finetune-v1)",
    add_train_arguments,
    lambda args: run_task(args, "finetune"),
))
