"""The runner's side of the SDK seam: task-run reports through the run's credentials.

Only used when the flow's code imported ``pushpool`` (a plain-function flow pays
nothing). :class:`RunnerTaskReporter` implements ``pushpool.reporting.TaskRunReporter``:

* ``report(batch)`` sends the SDK's batches (the SDK coalesces snapshots, at most
  500 a batch) through ``send``; a batch that cannot be delivered is kept (coalesced by
  task-run id, at most ``MAX_KEPT`` snapshots) and goes out with the next one or at
  :meth:`close`, so a control-plane outage loses no task run that recovers in time.
* cache records live on the server (``GET``/``PUT .../cache/{key}``); a record that
  cannot be read is a cache miss, one that cannot be written is logged: caching never
  fails a task.
* concurrency slots are held within this run only, until the server's lease endpoints
  exist (they will go through the same transport).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pushpool.records import CacheRecord, TaskRunRecord

MAX_KEPT = 50_000

logger = logging.getLogger("pushpool.runner")


class TaskTransport(Protocol):
    """What the reporter needs from the runner's client (bound to the run's token)."""

    def send_task_runs(self, task_runs: list[dict[str, Any]]) -> None: ...

    def get_cache_record(self, key: str) -> dict[str, Any] | None: ...

    def put_cache_record(self, key: str, record: dict[str, Any]) -> None: ...


class RunnerTaskReporter:
    """Task-run reports over the runner's transport; slots and cache records per run."""

    def __init__(self, transport: TaskTransport) -> None:
        from pushpool.reporting import LocalReporter

        self._transport = transport
        self._kept: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._local = LocalReporter()
        self.failures = 0

    def report(self, batch: Sequence[TaskRunRecord]) -> None:
        with self._lock:
            for record in batch:
                self._kept[record.id] = record.to_json()
            self._deliver()

    def _deliver(self) -> None:
        """Send everything kept; on failure keep it (bounded) for the next try."""
        if not self._kept:
            return
        pending = list(self._kept.values())
        try:
            for start in range(0, len(pending), 500):
                self._transport.send_task_runs(pending[start : start + 500])
                for item in pending[start : start + 500]:
                    self._kept.pop(item["id"], None)
        except Exception as exc:  # the transport's errors: keep the snapshots
            self.failures += 1
            logger.warning("could not report task runs (will retry): %s", exc)
            while len(self._kept) > MAX_KEPT:
                self._kept.pop(next(iter(self._kept)))

    def close(self) -> None:
        """Try once more to deliver what is kept."""
        with self._lock:
            self._deliver()

    def acquire(self, tags: Sequence[str], holder: str, timeout: float | None) -> bool:
        return self._local.acquire(tags, holder, timeout)

    def release(self, tags: Sequence[str], holder: str) -> None:
        self._local.release(tags, holder)

    def cache_get(self, key: str) -> CacheRecord | None:
        from datetime import datetime

        from pushpool.records import CacheRecord

        try:
            data = self._transport.get_cache_record(key)
            if data is None:
                return None
            expires = data.get("expires_at")
            return CacheRecord(
                key=key,
                result_key=str(data["result_key"]),
                expires_at=datetime.fromisoformat(expires) if expires else None,
            )
        except Exception as exc:  # transport or shape: a miss, never a task failure
            logger.warning("could not read cache record (treated as a miss): %s", exc)
            return None

    def cache_put(self, record: CacheRecord) -> None:
        expires = record.expires_at.isoformat() if record.expires_at else None
        try:
            body = {"result_key": record.result_key, "expires_at": expires}
            self._transport.put_cache_record(record.key, body)
        except Exception as exc:
            logger.warning("could not write cache record: %s", exc)


@contextmanager
def task_environment(
    flow_run_id: str, transport: TaskTransport
) -> Iterator[RunnerTaskReporter | None]:
    """Install the SDK's run environment for the block if the flow uses ``pushpool``."""
    if "pushpool" not in sys.modules:
        yield None
        return
    from pushpool.context import RunEnvironment, use_environment
    from pushpool.results import default_store

    reporter = RunnerTaskReporter(transport)
    env = RunEnvironment(
        reporter=reporter,
        result_store=default_store(),
        flow_run_id=flow_run_id,
        flow_retries_in_process=False,  # the deployment's retries (from @flow at deploy)
    )
    try:
        with use_environment(env):
            yield reporter
    finally:
        reporter.close()
