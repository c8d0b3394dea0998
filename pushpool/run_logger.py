"""``get_run_logger()``: a logger whose records name the flow run and task run."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from pushpool.context import current_flow_run, current_task_run

FLOW_LOGGER = "pushpool.flow_runs"
TASK_LOGGER = "pushpool.task_runs"


class RunLogger(logging.LoggerAdapter[logging.Logger]):
    """Adds ``flow_run_id``, ``task_run_id`` and ``task_run_name`` to every record."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


def get_run_logger() -> RunLogger:
    """The logger of the current task run (inside a task) or flow run.

    Records carry the run ids as attributes, so the runner's log capture files a
    task's lines under that task run. Outside any flow the ids are None.
    """
    flow = current_flow_run()
    task = current_task_run()
    extra: dict[str, Any] = {
        "flow_run_id": flow.env.flow_run_id if flow is not None else None,
        "task_run_id": task.id if task is not None else None,
        "task_run_name": task.name if task is not None else None,
    }
    name = TASK_LOGGER if task is not None else FLOW_LOGGER
    return RunLogger(logging.getLogger(name), extra)


_print_hook_installed = False


def install_print_hook() -> None:
    """Make ``print`` log through the run logger where the flow asked for ``log_prints``.

    Installed once per process; outside such a flow ``print`` behaves as always.
    """
    global _print_hook_installed
    import builtins
    import sys

    if _print_hook_installed:
        return
    original = builtins.print

    def hooked(*values: object, sep: str | None = " ", end: str | None = "\n", **kw: Any) -> None:
        flow = current_flow_run()
        target = kw.get("file")
        if flow is None or not flow.log_prints or target not in (None, sys.stdout):
            original(*values, sep=sep, end=end, **kw)
            return
        get_run_logger().info((sep if sep is not None else " ").join(map(str, values)))

    builtins.print = hooked
    _print_hook_installed = True
