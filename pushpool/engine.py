"""Running one task run: inputs, cache, slots, attempts, retries, timeouts, results.

:class:`TaskRun` holds the phases shared by the sync driver (:func:`run_sync`) and
the async one (:func:`run_async`); each phase updates the run's record and reports
a snapshot through the flow's batching reporter.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pushpool._threads import call_with_timeout
from pushpool.cache import CacheContext
from pushpool.context import FlowRunContext, _task_run, entered
from pushpool.errors import ResultNotFound, ResultNotSerializable, TaskTimeoutError
from pushpool.futures import PushpoolFuture
from pushpool.records import CacheRecord, TaskRunRecord, TaskState
from pushpool.results import dumps, loads
from pushpool.retries import delay_before

if TYPE_CHECKING:
    from pushpool.tasks import Task

_MISSING = object()


def new_id() -> str:
    import uuid

    return str(uuid.uuid4())


def resolve_inputs(value: Any, ctx: FlowRunContext, upstream: dict[str, None]) -> Any:
    """``value`` with futures replaced by their results; upstream task runs collected.

    Looks inside lists, tuples, sets and dicts; a value that is the tracked result of
    an earlier task run counts as an input from that run.
    """
    value = note_upstream(value, ctx, upstream)
    if isinstance(value, list | tuple | set | frozenset):
        items = [resolve_inputs(item, ctx, upstream) for item in value]
        return type(value)(items) if not isinstance(value, tuple) else _same_tuple(value, items)
    if isinstance(value, dict):
        return {k: resolve_inputs(v, ctx, upstream) for k, v in value.items()}
    return value


def note_upstream(value: Any, ctx: FlowRunContext, upstream: dict[str, None]) -> Any:
    """``value`` (a future: its result), noting the task run that produced it, if any."""
    if isinstance(value, PushpoolFuture):
        upstream[value.task_run_id] = None
        return value.result()
    producer = ctx.producer_of(value)
    if producer is not None:
        upstream[producer] = None
    return value


def _same_tuple(original: tuple[Any, ...], items: list[Any]) -> tuple[Any, ...]:
    if hasattr(original, "_fields"):  # a namedtuple
        return type(original)(*items)
    return tuple(items)


class TaskRun:
    """One call of a task inside a flow run."""

    def __init__(
        self,
        task: Task[..., Any],
        ctx: FlowRunContext,
        parameters: dict[str, Any],
        record: TaskRunRecord,
    ) -> None:
        self.task = task
        self.ctx = ctx
        self.parameters = parameters
        self.record = record
        self.clock = ctx.env.clock
        self._slots_held = False

    # -- reporting -------------------------------------------------------------
    def _set(self, state: TaskState, **changes: Any) -> None:
        self.record.state = state
        for name, value in changes.items():
            setattr(self.record, name, value)
        self.ctx.reporter.add(self.record)

    def _now(self) -> datetime:
        return self.clock.now()

    # -- phases ----------------------------------------------------------------
    def resolve(self) -> None:
        """Replace futures in the parameters by their results; note upstream runs."""
        upstream: dict[str, None] = dict.fromkeys(self.record.upstream)
        self.parameters = {
            name: resolve_inputs(value, self.ctx, upstream)
            for name, value in self.parameters.items()
        }
        self.record.upstream = list(upstream)

    def cached(self) -> Any:
        """The cached result if a valid cache record exists, else ``_MISSING``."""
        key = self._cache_key()
        self.record.cache_key = key
        if key is None:
            return _MISSING
        entry = self.ctx.env.reporter.cache_get(key)
        if entry is None or not entry.valid_at(self._now()):
            return _MISSING
        try:
            value = loads(self.ctx.env.result_store.read(entry.result_key))
        except ResultNotFound:
            return _MISSING
        now = self._now()
        self.ctx.remember(value, self.record.id)
        self._set(TaskState.CACHED, start_time=now, end_time=now, result_key=entry.result_key)
        return value

    def _cache_key(self) -> str | None:
        task = self.task
        context = CacheContext(task.task_key, task.fn, self.ctx.env.flow_run_id)
        if task.cache_key_fn is not None:
            return task.cache_key_fn(context, self.parameters)
        if task.cache_policy is None:
            return None
        return task.cache_policy.compute_key(context, self.parameters)

    def acquire_slots(self) -> None:
        if not self.task.tags:
            return
        env = self.ctx.env
        if not env.reporter.acquire(self.task.tags, self.record.id, env.slot_timeout):
            raise TimeoutError(f"no concurrency slot for tags {self.task.tags} in time")
        self._slots_held = True

    def release_slots(self) -> None:
        if self._slots_held:
            self.ctx.env.reporter.release(self.task.tags, self.record.id)
            self._slots_held = False

    def start_attempt(self) -> None:
        self.record.attempts += 1
        start = self.record.start_time or self._now()
        self._set(TaskState.RUNNING, start_time=start)

    def retry_delay(self, exc: BaseException) -> float | None:
        """Seconds to wait before another attempt, or None: the run has failed."""
        task = self.task
        retries_done = self.record.attempts - 1
        if not isinstance(exc, Exception) or retries_done >= task.retries:
            return None
        if task.retry_condition_fn is not None and not task.retry_condition_fn(
            task, self.record, exc
        ):
            return None
        self._set(TaskState.RETRYING, error=_error(exc))
        return delay_before(retries_done + 1, task.retry_delay_seconds)

    def delay_after(self, exc: BaseException) -> float:
        """Seconds to wait before the next attempt after ``exc``; when there is none, the
        run is FAILED and ``exc`` raised."""
        delay = self.retry_delay(exc)
        if delay is None:
            self.fail(exc)
            raise exc
        return delay

    def fail(self, exc: BaseException) -> None:
        self._set(TaskState.FAILED, end_time=self._now(), error=_error(exc))

    def complete(self, value: Any) -> Any:
        """Record the value (persisted if asked or cached); return it."""
        result_key = self._persist(value)
        self.ctx.remember(value, self.record.id)
        self._set(TaskState.COMPLETED, end_time=self._now(), error=None, result_key=result_key)
        return value

    def _persist(self, value: Any) -> str | None:
        task = self.task
        key = self.record.cache_key
        persist = task.persist_result
        if persist is None:
            persist = self.ctx.persist_results
        if not persist and key is None:
            return None
        try:
            data = dumps(value, task.result_serializer)
        except ResultNotSerializable:
            if persist:
                raise
            import logging

            logging.getLogger("pushpool").warning(
                "task %r: result not cached: it is not JSON-serialisable "
                "(pass result_serializer='pickle' to opt in)",
                self.record.name,
            )
            return None
        result_key = f"cache/{key}" if key is not None else f"task-runs/{self.record.id}"
        self.ctx.env.result_store.write(result_key, data)
        if key is not None:
            expires = self._now() + task.cache_expiration if task.cache_expiration else None
            self.ctx.env.reporter.cache_put(CacheRecord(key, result_key, expires))
        return result_key


def _error(exc: BaseException) -> dict[str, str]:
    import traceback

    return {
        "type": type(exc).__qualname__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc))[-16_000:],
    }


@contextmanager
def _driven(run: TaskRun) -> Iterator[Any]:
    """Resolve the inputs; yield the cached value, or ``_MISSING`` once the run holds its
    tag slots; on any error the run is FAILED; its slots are released on the way out."""
    run.resolve()
    try:
        value = run.cached()
        if value is _MISSING:
            run.acquire_slots()
        yield value
    except BaseException as exc:
        if run.record.state is not TaskState.FAILED:
            run.fail(exc)
        raise
    finally:
        run.release_slots()


def run_sync(run: TaskRun) -> Any:
    """Drive a sync task run to its end; return its value or raise its error."""
    with _driven(run) as cached:
        return _attempts_sync(run) if cached is _MISSING else cached


def _attempts_sync(run: TaskRun) -> Any:
    while True:
        run.start_attempt()
        try:
            with entered(_task_run, run.record):
                value = _call_sync(run.task, run.parameters)
        except BaseException as exc:
            if delay := run.delay_after(exc):
                run.clock.sleep(delay)
            continue
        return run.complete(value)


def _call_sync(task: Task[..., Any], parameters: dict[str, Any]) -> Any:
    if task.timeout_seconds is None:
        return task.fn(**parameters)
    return call_with_timeout(
        lambda: task.fn(**parameters), task.timeout_seconds, lambda: _timed_out(task)
    )


async def run_async(run: TaskRun) -> Any:
    """Drive an async task run to its end on the running event loop."""
    with _driven(run) as cached:
        return await _attempts_async(run) if cached is _MISSING else cached


async def _attempts_async(run: TaskRun) -> Any:
    while True:
        run.start_attempt()
        try:
            with entered(_task_run, run.record):
                value = await _call_async(run.task, run.parameters)
        except BaseException as exc:
            if delay := run.delay_after(exc):
                await run.clock.async_sleep(delay)
            continue
        return run.complete(value)


async def _call_async(task: Task[..., Any], parameters: dict[str, Any]) -> Any:
    import asyncio

    coro = task.fn(**parameters)
    if task.timeout_seconds is None:
        return await coro
    try:
        return await asyncio.wait_for(coro, task.timeout_seconds)
    except TimeoutError:
        raise _timed_out(task) from None


def _timed_out(task: Task[..., Any]) -> TaskTimeoutError:
    return TaskTimeoutError(f"task timed out after {task.timeout_seconds} seconds")


def is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn)
