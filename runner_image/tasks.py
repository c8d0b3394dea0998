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
* tag concurrency slots are leases on the server: ``acquire`` asks until granted (with
  backoff, up to the SDK's timeout), a background thread renews held leases every
  ``LEASE_SECONDS / 3``, and ``release`` gives them back; a crashed run's leases
  simply expire.
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pushpool.records import CacheRecord, TaskRunRecord

MAX_KEPT = 50_000
LEASE_SECONDS = 60.0
ACQUIRE_BACKOFF = (0.2, 0.5, 1.0, 2.0)

logger = logging.getLogger("pushpool.runner")


class TaskTransport(Protocol):
    """What the reporter needs from the runner's client (bound to the run's token)."""

    def send_task_runs(self, task_runs: list[dict[str, Any]]) -> None: ...

    def get_cache_record(self, key: str) -> dict[str, Any] | None: ...

    def put_cache_record(self, key: str, record: dict[str, Any]) -> None: ...

    def acquire_slots(self, tags: list[str], holder: str, lease_seconds: float) -> bool: ...

    def release_slots(self, tags: list[str], holder: str) -> None: ...

    def get_block(self, slug: str, name: str) -> dict[str, Any]: ...
    def send_event(self, event: dict[str, Any]) -> dict[str, Any]: ...


class RunnerTaskReporter:
    """Task-run reports over the runner's transport; slots and cache records per run."""

    def __init__(
        self,
        transport: TaskTransport,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self._kept: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._sleep = sleep
        self._monotonic = monotonic
        self._held: dict[str, list[str]] = {}
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
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

    def emit_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """Send one event from flow code now (``pushpool.emit_event`` handles failures)."""
        return self._transport.send_event(event)

    def close(self) -> None:
        """Stop renewing leases; try once more to deliver what is kept."""
        self._stop.set()
        with self._lock:
            self._deliver()

    def acquire(self, tags: Sequence[str], holder: str, timeout: float | None) -> bool:
        deadline = None if timeout is None else self._monotonic() + timeout
        for attempt in itertools.count():
            try:
                if self._transport.acquire_slots(list(tags), holder, LEASE_SECONDS):
                    self._hold(holder, list(tags))
                    return True
            except Exception as exc:  # an outage: keep asking until the deadline
                logger.warning("could not ask for concurrency slots (will retry): %s", exc)
            delay = ACQUIRE_BACKOFF[min(attempt, len(ACQUIRE_BACKOFF) - 1)]
            if deadline is not None and self._monotonic() + delay > deadline:
                return False
            self._sleep(delay)
        return False  # pragma: no cover - the loop only ends by returning

    def release(self, tags: Sequence[str], holder: str) -> None:
        with self._lock:
            self._held.pop(holder, None)
        try:
            self._transport.release_slots(list(tags), holder)
        except Exception as exc:  # the lease expires on its own
            logger.warning("could not release concurrency slots (they will expire): %s", exc)

    def _hold(self, holder: str, tags: list[str]) -> None:
        with self._lock:
            self._held[holder] = tags
            if self._renewer is None:
                self._renewer = threading.Thread(
                    target=self._renew, name="pushpool-leases", daemon=True
                )
                self._renewer.start()

    def _renew(self) -> None:
        """Renew every held lease a few times per lease period until closed."""
        while not self._stop.wait(LEASE_SECONDS / 3):
            with self._lock:
                held = list(self._held.items())
            for holder, tags in held:
                try:
                    self._transport.acquire_slots(tags, holder, LEASE_SECONDS)
                except Exception as exc:
                    logger.warning("could not renew concurrency slots: %s", exc)

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


def block_reader(
    transport: TaskTransport, on_secret: Callable[..., None]
) -> Callable[[str, str], dict[str, Any]]:
    """``Block.load``'s channel: the run's route, errors as ``BlockError`` naming the
    block; each secret read is handed to ``on_secret`` (the log redactor) first."""

    def read(slug: str, name: str) -> dict[str, Any]:
        from pushpool.errors import BlockError

        try:
            data = transport.get_block(slug, name)
        except Exception as exc:
            raise BlockError(f"block '{slug}/{name}' could not be loaded: {exc}") from exc
        values = data.get("values") or {}
        secrets = [values.get(f) for f in data.get("secret_fields") or []]
        on_secret(*(s if isinstance(s, str) else json.dumps(s) for s in secrets if s is not None))
        return dict(values)

    return read


@contextmanager
def task_environment(
    flow_run_id: str, transport: TaskTransport, on_secret: Callable[..., None] = lambda *s: None
) -> Iterator[RunnerTaskReporter | None]:
    """Install the SDK's run environment for the block if the flow uses ``pushpool``:
    results go to the store ``PUSHPOOL_RESULT_STORAGE`` names (the pool's
    ``result_storage``; default: ``$PUSHPOOL_HOME/results``)."""
    if "pushpool" not in sys.modules:
        yield None
        return
    import os

    from pushpool.context import RunEnvironment, use_environment
    from pushpool.results import RESULT_STORAGE_ENV, store_for

    store = store_for(os.environ.get(RESULT_STORAGE_ENV))  # the pool's, set by the service
    reporter = RunnerTaskReporter(transport)
    env = RunEnvironment(
        reporter=reporter,
        result_store=store,
        flow_run_id=flow_run_id,
        flow_retries_in_process=False,  # the deployment's retries (from @flow at deploy)
        blocks=block_reader(transport, on_secret),
    )
    try:
        with use_environment(env):
            yield reporter
    finally:
        reporter.close()
