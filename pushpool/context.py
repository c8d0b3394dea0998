"""Where the SDK keeps the state of the flow run and task run being executed.

:class:`RunEnvironment` is what the runner installs (with :func:`use_environment`)
before it calls a flow: the flow run id, the reporter bound to the run's
credentials and the pool's result store. Without one, a flow called from plain
Python gets a local environment (in-memory reporter, results under
``PUSHPOOL_HOME``).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pushpool._clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    from pushpool.records import TaskRunRecord
    from pushpool.reporting import BatchingReporter, TaskRunReporter
    from pushpool.results import ResultStore
    from pushpool.task_runners import ThreadPoolTaskRunner


@dataclass
class RunEnvironment:
    """The services a flow run uses; ``flow_retries_in_process`` is False under a runner
    whose control plane retries failed runs itself (so a run is not retried twice)."""

    reporter: TaskRunReporter
    result_store: ResultStore
    flow_run_id: str | None = None
    clock: Clock = SYSTEM_CLOCK
    flow_retries_in_process: bool = True
    slot_timeout: float | None = None
    report_batch_size: int = 500
    report_flush_seconds: float = 2.0
    #: Reads a block document's values (secrets in clear) by ``(type slug, name)``
    #: through the run's credentials; None outside a run (``Block.load`` refuses).
    blocks: Callable[[str, str], dict[str, Any]] | None = None


@dataclass
class FlowRunContext:
    """One executing flow call: its environment, batching reporter and task runner."""

    env: RunEnvironment
    flow_name: str
    reporter: BatchingReporter
    task_runner: ThreadPoolTaskRunner
    log_prints: bool = False
    persist_results: bool | None = None
    futures: list[Any] = field(default_factory=list)
    _produced: dict[int, tuple[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def remember(self, value: Any, task_run_id: str) -> None:
        """Note that ``value`` is the result of ``task_run_id`` (for the dependency graph).

        Only values with an identity worth tracking (not None, bools, numbers, short
        strings) are remembered; the value is kept alive so its id is not reused.
        """
        if value is None or isinstance(value, bool | int | float | str | bytes):
            return
        with self._lock:
            self._produced[id(value)] = (task_run_id, value)

    def producer_of(self, value: Any) -> str | None:
        entry = self._produced.get(id(value))
        return entry[0] if entry is not None and entry[1] is value else None

    def track(self, future: Any) -> None:
        with self._lock:
            self.futures.append(future)


_flow_run: contextvars.ContextVar[FlowRunContext | None] = contextvars.ContextVar(
    "pushpool_flow_run", default=None
)
_task_run: contextvars.ContextVar[TaskRunRecord | None] = contextvars.ContextVar(
    "pushpool_task_run", default=None
)
_environment: RunEnvironment | None = None


def current_flow_run() -> FlowRunContext | None:
    return _flow_run.get()


def current_task_run() -> TaskRunRecord | None:
    return _task_run.get()


def get_environment() -> RunEnvironment | None:
    """The environment installed by the runner, if any."""
    return _environment


@contextmanager
def use_environment(env: RunEnvironment) -> Iterator[RunEnvironment]:
    """Install ``env`` for flows called inside the block (process-wide: one run per runner)."""
    global _environment
    previous, _environment = _environment, env
    try:
        yield env
    finally:
        _environment = previous


def local_environment() -> RunEnvironment:
    """The environment of a flow called outside a run: everything local."""
    from pushpool.reporting import LocalReporter
    from pushpool.results import default_store

    _console_logging()
    store = default_store()
    return RunEnvironment(
        reporter=LocalReporter(cache_dir=store.root / "cache"), result_store=store
    )


@contextmanager
def entered(var: contextvars.ContextVar[Any], value: Any) -> Iterator[None]:
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


def _console_logging() -> None:
    """Show run logs on stderr for a local call, unless the program configured logging."""
    import logging

    logger = logging.getLogger("pushpool")
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)-7s | %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
