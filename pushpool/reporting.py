"""The transport seam between the SDK and whatever runs the flow.

A :class:`TaskRunReporter` is all the SDK knows about the control plane: it
receives batches of task-run snapshots, hands out tag-concurrency slots and keeps
cache records. The runner provides one bound to the run's credentials (spooled and
retried like the flow's own reports); outside a run :class:`LocalReporter` keeps
everything in memory, with cache records optionally on disk so that a second
``python my_flow.py`` finds them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pushpool.records import CacheRecord, TaskRunRecord

DEFAULT_BATCH_SIZE = 500
DEFAULT_FLUSH_SECONDS = 2.0


@runtime_checkable
class TaskRunReporter(Protocol):
    """What the SDK needs from the run's side of the control plane."""

    def report(self, batch: Sequence[TaskRunRecord]) -> None:
        """Record the latest snapshot of every task run in ``batch``."""

    def acquire(self, tags: Sequence[str], holder: str, timeout: float | None) -> bool:
        """Take one slot of every tag's concurrency limit for ``holder``.

        Blocks until all slots are held (True) or ``timeout`` seconds pass (False).
        Tags without a limit need no slot. Slots are leases: the reporter renews
        them while held, and the server frees them if the run disappears.
        """

    def release(self, tags: Sequence[str], holder: str) -> None:
        """Give back the slots ``holder`` took for ``tags``."""

    def cache_get(self, key: str) -> CacheRecord | None:
        """The cache record for ``key``, or None (expired records are None)."""

    def cache_put(self, record: CacheRecord) -> None:
        """Store ``record`` (replacing any record under the same key)."""


class LocalReporter:
    """An in-process reporter for flows called outside a run.

    Task runs are kept in :attr:`task_runs` (by id). ``limits`` maps tags to slot
    counts, enforced between threads of this process. With ``cache_dir`` the cache
    records are JSON files there; otherwise they live in memory.
    """

    def __init__(
        self, *, limits: dict[str, int] | None = None, cache_dir: Path | None = None
    ) -> None:
        self.task_runs: dict[str, TaskRunRecord] = {}
        self.batches = 0
        self._limits = dict(limits or {})
        self._held: dict[str, set[str]] = {tag: set() for tag in self._limits}
        self._cond = threading.Condition()
        self._cache: dict[str, CacheRecord] = {}
        self._cache_dir = cache_dir
        #: Events emitted by flow code outside a run (``pushpool.emit_event``).
        self.events: list[dict[str, Any]] = []

    def emit_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """Keep ``event`` (outside a run there is no service to send it to)."""
        with self._cond:
            self.events.append(event)
        return event

    def report(self, batch: Sequence[TaskRunRecord]) -> None:
        with self._cond:
            self.batches += 1
            for record in batch:
                self.task_runs[record.id] = record

    def acquire(self, tags: Sequence[str], holder: str, timeout: float | None) -> bool:
        limited = [tag for tag in tags if tag in self._limits]
        with self._cond:
            ok = self._cond.wait_for(lambda: self._free(limited), timeout)
            if ok:
                for tag in limited:
                    self._held[tag].add(holder)
            return ok

    def _free(self, tags: Sequence[str]) -> bool:
        return all(len(self._held[tag]) < self._limits[tag] for tag in tags)

    def release(self, tags: Sequence[str], holder: str) -> None:
        with self._cond:
            for tag in tags:
                self._held.get(tag, set()).discard(holder)
            self._cond.notify_all()

    def cache_get(self, key: str) -> CacheRecord | None:
        if self._cache_dir is None:
            return self._cache.get(key)
        path = self._cache_dir / f"{key}.json"
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        expires = data.get("expires_at")
        return CacheRecord(
            key=key,
            result_key=data["result_key"],
            expires_at=datetime.fromisoformat(expires) if expires else None,
        )

    def cache_put(self, record: CacheRecord) -> None:
        if self._cache_dir is None:
            self._cache[record.key] = record
            return
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        expires = record.expires_at.isoformat() if record.expires_at else None
        data = {"result_key": record.result_key, "expires_at": expires}
        tmp = self._cache_dir / f".{record.key}.tmp"
        tmp.write_text(json.dumps(data))
        tmp.replace(self._cache_dir / f"{record.key}.json")


class BatchingReporter:
    """Coalesces task-run snapshots and hands them to ``inner`` in batches.

    A snapshot replaces an unsent one of the same task run, so a task's several
    transitions usually cost one entry. A batch goes out when ``batch_size`` task
    runs are waiting, when ``flush_seconds`` passed since the last batch (checked as
    snapshots arrive), and on :meth:`flush`.
    """

    def __init__(
        self,
        inner: TaskRunReporter,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        batch_size: int = DEFAULT_BATCH_SIZE,
        flush_seconds: float = DEFAULT_FLUSH_SECONDS,
    ) -> None:
        self.inner = inner
        self._monotonic = monotonic
        self._batch_size = batch_size
        self._flush_seconds = flush_seconds
        self._pending: dict[str, TaskRunRecord] = {}
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._last = self._monotonic()

    def add(self, record: TaskRunRecord) -> None:
        """Queue a snapshot of ``record`` (copied: later changes are not sent)."""
        with self._lock:
            self._pending[record.id] = replace(record, upstream=list(record.upstream))
            due = len(self._pending) >= self._batch_size or (
                self._monotonic() - self._last >= self._flush_seconds
            )
        if due:
            self.flush()

    def flush(self) -> None:
        """Send everything waiting, in batches of at most ``batch_size``."""
        with self._send_lock:
            with self._lock:
                pending = list(self._pending.values())
                self._pending.clear()
                self._last = self._monotonic()
            for start in range(0, len(pending), self._batch_size):
                self.inner.report(pending[start : start + self._batch_size])
