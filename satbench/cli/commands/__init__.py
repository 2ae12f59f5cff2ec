"""CLI subcommands: one module each, discovered by :func:`satbench.cli.app.build_parser`.

Shared argument helpers live in :mod:`satbench.cli.commands._common`; ``satbench run`` task plug-ins live
in modules named ``task_<name>.py`` and register through :mod:`satbench.cli.commands._tasks`.
"""
