"""Task runners: where submitted tasks execute.

:class:`ThreadPoolTaskRunner` runs sync tasks on a thread pool and async tasks on
one event loop in a background thread, at most ``max_workers`` of each at a time.
A flow gets a fresh runner (a :meth:`duplicate` of its ``task_runner``) per call.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

DEFAULT_MAX_WORKERS = 16


class ThreadPoolTaskRunner:
    """Runs submitted tasks concurrently, bounded by ``max_workers``."""

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers}")
        self.max_workers = max_workers or DEFAULT_MAX_WORKERS
        self._executor: ThreadPoolExecutor | None = None
        self._loop: Any = None
        self._loop_thread: threading.Thread | None = None
        self._semaphore: Any = None
        self._lock = threading.Lock()

    def duplicate(self) -> ThreadPoolTaskRunner:
        return type(self)(self.max_workers)

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run ``fn()`` on the pool, in a copy of the caller's context."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.max_workers, "pushpool-task")
        return self._executor.submit(contextvars.copy_context().run, fn)

    def submit_async(self, make: Callable[[], Coroutine[Any, Any, Any]]) -> Future[Any]:
        """Run the coroutine ``make()`` returns on the runner's event loop."""
        import asyncio

        loop = self._ensure_loop()
        context = contextvars.copy_context()
        return asyncio.run_coroutine_threadsafe(self._bounded(make, context), loop)

    async def _bounded(
        self, make: Callable[[], Coroutine[Any, Any, Any]], context: contextvars.Context
    ) -> Any:
        import asyncio

        async with self._semaphore:
            task = asyncio.get_running_loop().create_task(make(), context=context)
            return await task

    def _ensure_loop(self) -> Any:
        import asyncio

        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    self._semaphore = asyncio.Semaphore(self.max_workers)
                    ready.set()
                    loop.run_forever()

                thread = threading.Thread(target=serve, name="pushpool-loop", daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._loop_thread = loop, thread
            return self._loop

    def shutdown(self) -> None:
        """Wait for running tasks, then stop the pool and the loop."""
        with self._lock:
            executor, self._executor = self._executor, None
            loop, thread = self._loop, self._loop_thread
            self._loop = self._loop_thread = None
        if executor is not None:
            executor.shutdown(wait=True)
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
