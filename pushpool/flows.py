"""``@flow``: the entry point of a run; called from plain Python it runs locally."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar, Unpack, overload

from pushpool._decorated import CommonOptions, Decorated
from pushpool._threads import call_with_timeout
from pushpool.context import (
    FlowRunContext,
    RunEnvironment,
    _flow_run,
    current_flow_run,
    entered,
    get_environment,
    local_environment,
)
from pushpool.errors import FlowTimeoutError, ParameterError
from pushpool.task_runners import ThreadPoolTaskRunner

P = ParamSpec("P")
R = TypeVar("R")


class Flow(Decorated[P, R]):
    """A flow: call it to run it (tasks included) in the current environment."""

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        log_prints: bool = False,
        validate_parameters: bool = True,
        task_runner: ThreadPoolTaskRunner | None = None,
        **options: Unpack[CommonOptions],
    ) -> None:
        super().__init__(fn, "flow", **options)
        self.log_prints = log_prints
        self.validate_parameters = validate_parameters
        self.task_runner = task_runner or ThreadPoolTaskRunner()
        self.is_async = inspect.iscoroutinefunction(fn)
        self._validator: Callable[..., Any] | None = None

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the flow; an async flow returns a coroutine to await."""
        call_args, call_kwargs = self._validated(args, kwargs)
        if current_flow_run() is not None:  # a subflow runs inside its parent's run
            return self.fn(*call_args, **call_kwargs)
        env = get_environment() or local_environment()
        if self.is_async:
            return self._run_async(env, call_args, call_kwargs)  # type: ignore[return-value]
        return self._run_sync(env, call_args, call_kwargs)

    # -- parameters ----------------------------------------------------------------
    def _validated(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Arguments converted to the annotated types (pydantic), or ParameterError."""
        if not self.validate_parameters or not _annotated(self.fn):
            return args, kwargs
        from pushpool.parameters import coerce_arguments

        return coerce_arguments(self.fn, self.name, args, kwargs)

    # -- execution -----------------------------------------------------------------
    def _context(self, env: RunEnvironment) -> FlowRunContext:
        from pushpool.reporting import BatchingReporter

        return FlowRunContext(
            env=env,
            flow_name=self.name,
            reporter=BatchingReporter(
                env.reporter,
                monotonic=env.clock.monotonic,
                batch_size=env.report_batch_size,
                flush_seconds=env.report_flush_seconds,
            ),
            task_runner=self.task_runner.duplicate(),
            log_prints=self.log_prints,
            persist_results=self.persist_result,
        )

    def _delays(self, env: RunEnvironment) -> list[float]:
        """The waits before each retry this process makes (none under a runner whose
        control plane retries the run)."""
        return self.delays(self.retries if env.flow_retries_in_process else 0)

    def _run_sync(self, env: RunEnvironment, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> R:
        for delay in self._delays(env):
            try:
                return self._attempt_sync(env, args, kwargs)
            except Exception:
                env.clock.sleep(delay)
        return self._attempt_sync(env, args, kwargs)

    async def _run_async(
        self, env: RunEnvironment, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> R:
        for delay in self._delays(env):
            try:
                return await self._attempt_async(env, args, kwargs)
            except Exception:
                await env.clock.async_sleep(delay)
        return await self._attempt_async(env, args, kwargs)

    @contextmanager
    def _running(self, env: RunEnvironment) -> Iterator[FlowRunContext]:
        """The attempt's context, entered; its task runner shut down and its reports
        flushed on the way out."""
        ctx = self._context(env)
        try:
            with entered(_flow_run, ctx), _prints(ctx):
                yield ctx
        finally:
            ctx.task_runner.shutdown()
            ctx.reporter.flush()

    def _attempt_sync(
        self, env: RunEnvironment, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> R:
        with self._running(env) as ctx:
            if self.timeout_seconds is None:
                value = self.fn(*args, **kwargs)
            else:
                value = call_with_timeout(
                    lambda: self.fn(*args, **kwargs), self.timeout_seconds, self._timed_out
                )
            value = _resolve_return(value)
            _wait_all(ctx)
            self._persist(ctx, value)
            return value

    async def _attempt_async(
        self, env: RunEnvironment, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> R:
        import asyncio

        with self._running(env) as ctx:
            coro: Any = self.fn(*args, **kwargs)
            try:
                value: Any = await asyncio.wait_for(coro, self.timeout_seconds)
            except TimeoutError as exc:
                if self.timeout_seconds is None:
                    raise
                raise self._timed_out() from exc
            value = await asyncio.to_thread(_resolve_return, value)
            await asyncio.to_thread(_wait_all, ctx)
            self._persist(ctx, value)
            return value

    def _timed_out(self) -> FlowTimeoutError:
        seconds = self.timeout_seconds
        return FlowTimeoutError(f"flow {self.name!r} timed out after {seconds} seconds")

    def _persist(self, ctx: FlowRunContext, value: Any) -> None:
        if not self.persist_result or ctx.env.flow_run_id is None:
            return
        from pushpool.results import dumps

        ctx.env.result_store.write(f"flow-runs/{ctx.env.flow_run_id}/result", dumps(value, "json"))

    def __repr__(self) -> str:
        return f"Flow({self.name!r})"


def _annotated(fn: Callable[..., Any]) -> bool:
    annotations = getattr(fn, "__annotations__", {})
    return any(name != "return" for name in annotations)


def _resolve_return(value: Any) -> Any:
    """A flow that returns futures returns their results."""
    from pushpool.futures import PushpoolFuture

    if isinstance(value, PushpoolFuture):
        return value.result()
    if isinstance(value, list) and value and all(isinstance(v, PushpoolFuture) for v in value):
        return [v.result() for v in value]
    return value


def _wait_all(ctx: FlowRunContext) -> None:
    """Wait for every task the flow submitted; the first failure not handled by the flow
    is not raised (the flow decided what to do with its futures)."""
    from pushpool.futures import wait

    wait(list(ctx.futures))


class _prints:
    """With ``log_prints``, ``print`` inside the flow (and its tasks) goes to the run logger."""

    def __init__(self, ctx: FlowRunContext) -> None:
        self.ctx = ctx

    def __enter__(self) -> None:
        if self.ctx.log_prints:
            from pushpool.run_logger import install_print_hook

            install_print_hook()

    def __exit__(self, *exc: object) -> None:
        return None


@overload
def flow(fn: Callable[P, R], /) -> Flow[P, R]: ...


@overload
def flow(
    *,
    log_prints: bool = False,
    validate_parameters: bool = True,
    task_runner: ThreadPoolTaskRunner | None = None,
    **options: Unpack[CommonOptions],
) -> Callable[[Callable[P, R]], Flow[P, R]]: ...


def flow(fn: Callable[P, R] | None = None, /, **options: Any) -> Any:
    """Decorate a function as a flow: ``@flow`` or ``@flow(retries=2, ...)``."""
    from pushpool.tasks import decorator

    return decorator(Flow, fn, options)


__all__ = ["Flow", "ParameterError", "flow"]
