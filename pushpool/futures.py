"""Futures returned by ``Task.submit`` and ``Task.map``; ``wait`` and ``as_completed``."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Generator, Iterable, Iterator
from typing import Any, Generic, NamedTuple, TypeVar

from pushpool.records import TaskRunRecord, TaskState

R = TypeVar("R")


class PushpoolFuture(Generic[R]):
    """The eventual result of one task run."""

    def __init__(self, record: TaskRunRecord, future: cf.Future[R]) -> None:
        self.record = record
        self.wrapped = future

    @property
    def task_run_id(self) -> str:
        return self.record.id

    @property
    def state(self) -> TaskState:
        return self.record.state

    def done(self) -> bool:
        return self.wrapped.done()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the task run finished (or ``timeout`` seconds passed)."""
        cf.wait([self.wrapped], timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> Any:
        """The task's return value; its exception if it failed (or that exception
        returned, with ``raise_on_failure=False``)."""
        try:
            return self.wrapped.result(timeout=timeout)
        except cf.TimeoutError:
            raise
        except Exception as exc:
            if raise_on_failure:
                raise
            return exc

    def __await__(self) -> Generator[Any, None, R]:
        import asyncio

        return asyncio.wrap_future(self.wrapped).__await__()

    def __repr__(self) -> str:
        return f"PushpoolFuture({self.record.name!r}, {self.record.state})"


class PushpoolFutureList(list[PushpoolFuture[R]]):
    """The futures of a ``.map()``; ``result()`` returns every result in order."""

    def wait(self, timeout: float | None = None) -> None:
        wait(self, timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> list[Any]:
        return [f.result(timeout=timeout, raise_on_failure=raise_on_failure) for f in self]


class DoneAndNotDone(NamedTuple):
    done: set[PushpoolFuture[Any]]
    not_done: set[PushpoolFuture[Any]]


def wait(futures: Iterable[PushpoolFuture[Any]], timeout: float | None = None) -> DoneAndNotDone:
    """Wait until every future is done (or ``timeout`` seconds passed)."""
    by_inner = {f.wrapped: f for f in futures}
    done, not_done = cf.wait(list(by_inner), timeout=timeout)
    return DoneAndNotDone({by_inner[f] for f in done}, {by_inner[f] for f in not_done})


def as_completed(
    futures: Iterable[PushpoolFuture[Any]], timeout: float | None = None
) -> Iterator[PushpoolFuture[Any]]:
    """Yield futures as they finish; ``TimeoutError`` if ``timeout`` passes first."""
    by_inner = {f.wrapped: f for f in futures}
    for inner in cf.as_completed(list(by_inner), timeout=timeout):
        yield by_inner[inner]
