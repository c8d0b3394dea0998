"""``@task``: a function that runs as a recorded, retriable, cacheable task run."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, Unpack, overload

from pushpool._decorated import CommonOptions, Decorated
from pushpool.cache import CacheContext, CachePolicy
from pushpool.context import FlowRunContext, current_flow_run
from pushpool.futures import PushpoolFuture, PushpoolFutureList
from pushpool.records import TaskRunRecord
from pushpool.results import SERIALIZERS, Serializer

if TYPE_CHECKING:
    from pushpool.engine import TaskRun

P = ParamSpec("P")
R = TypeVar("R")

RetryCondition = Callable[["Task[..., Any]", TaskRunRecord, BaseException], bool]
CacheKeyFn = Callable[[CacheContext, Mapping[str, Any]], "str | None"]


class unmapped:
    """Wrap an argument of ``.map()`` that is passed whole to every mapped call."""

    def __init__(self, value: Any) -> None:
        self.value = value


class TaskOptions(CommonOptions, total=False):
    """The keyword options of ``@task``."""

    retry_condition_fn: RetryCondition | None
    cache_policy: CachePolicy | None
    cache_key_fn: CacheKeyFn | None
    cache_expiration: timedelta | None
    result_serializer: Serializer
    tags: Iterable[str]


class Task(Decorated[P, R]):
    """A task: call it to run it, ``.submit()`` for a future, ``.map()`` to fan out."""

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        retry_condition_fn: RetryCondition | None = None,
        cache_policy: CachePolicy | None = None,
        cache_key_fn: CacheKeyFn | None = None,
        cache_expiration: timedelta | None = None,
        result_serializer: Serializer = "json",
        tags: Iterable[str] = (),
        **options: Unpack[CommonOptions],
    ) -> None:
        super().__init__(fn, "task", **options)
        if result_serializer not in SERIALIZERS:
            raise ValueError(f"result_serializer must be one of {SERIALIZERS}")
        if cache_policy is not None and not isinstance(cache_policy, CachePolicy):
            raise TypeError("cache_policy must be INPUTS, TASK_SOURCE, NONE or a combination")
        if cache_expiration is not None and not isinstance(cache_expiration, timedelta):
            raise TypeError("cache_expiration must be a datetime.timedelta")
        self.task_key = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', self.name)}"
        self.retry_condition_fn = retry_condition_fn
        self.cache_policy = cache_policy
        self.cache_key_fn = cache_key_fn
        self.cache_expiration = cache_expiration
        self.result_serializer: Serializer = result_serializer
        self.tags = sorted(set(tags))
        self.is_async = _is_async(fn)

    def with_options(self, **options: Any) -> Task[P, R]:
        """A copy of this task with some options changed."""
        current = {
            "name": self.name,
            "retries": self.retries,
            "retry_delay_seconds": self.retry_delay_seconds,
            "retry_condition_fn": self.retry_condition_fn,
            "timeout_seconds": self.timeout_seconds,
            "cache_policy": self.cache_policy,
            "cache_key_fn": self.cache_key_fn,
            "cache_expiration": self.cache_expiration,
            "persist_result": self.persist_result,
            "result_serializer": self.result_serializer,
            "tags": self.tags,
        }
        unknown = set(options) - set(current)
        if unknown:
            raise TypeError(f"unknown task options: {sorted(unknown)}")
        return Task(self.fn, **{**current, **options})

    # -- calling -----------------------------------------------------------------
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the task now (an async task returns a coroutine to await)."""
        from pushpool import engine

        ctx = current_flow_run()
        if ctx is None:
            return _run_outside_flow(self, args, kwargs)
        run = self._prepare(ctx, args, kwargs, None)
        if self.is_async:
            return engine.run_async(run)  # type: ignore[return-value]
        result: R = engine.run_sync(run)
        return result

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> PushpoolFuture[R]:
        """Start the task on the flow's task runner; return its future."""
        ctx = _require_flow(self, "submit")
        return self._submit(ctx, args, kwargs, None)

    def map(self, *args: Any, **kwargs: Any) -> PushpoolFutureList[R]:
        """Submit one run per element of the iterable arguments (zipped; lengths must
        match); wrap an iterable passed whole in :class:`unmapped`."""
        ctx = _require_flow(self, "map")
        from pushpool.engine import note_upstream

        # a future is resolved (its elements are mapped); the producer of a mapped
        # iterable is an upstream of every element's run
        upstream: dict[str, None] = {}
        args = tuple(note_upstream(value, ctx, upstream) for value in args)
        kwargs = {key: note_upstream(value, ctx, upstream) for key, value in kwargs.items()}
        calls = _expand(self.name, args, kwargs)
        futures: PushpoolFutureList[R] = PushpoolFutureList()
        for index, (call_args, call_kwargs) in enumerate(calls):
            futures.append(self._submit(ctx, call_args, call_kwargs, index, list(upstream)))
        return futures

    def _submit(
        self,
        ctx: FlowRunContext,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        map_index: int | None,
        upstream: list[str] | None = None,
    ) -> PushpoolFuture[R]:
        from pushpool import engine

        run = self._prepare(ctx, args, kwargs, map_index)
        run.record.upstream = upstream or []
        if self.is_async:
            inner = ctx.task_runner.submit_async(lambda: engine.run_async(run))
        else:
            inner = ctx.task_runner.submit(lambda: engine.run_sync(run))
        future: PushpoolFuture[R] = PushpoolFuture(run.record, inner)
        ctx.track(future)
        return future

    def _prepare(
        self,
        ctx: FlowRunContext,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        map_index: int | None,
    ) -> TaskRun:
        import inspect

        from pushpool.engine import TaskRun, new_id

        try:
            bound = inspect.signature(self.fn).bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"task {self.name!r}: {exc}") from None
        bound.apply_defaults()
        record = TaskRunRecord(
            id=new_id(),
            flow_run_id=ctx.env.flow_run_id,
            task_key=self.task_key,
            name=self.name if map_index is None else f"{self.name}[{map_index}]",
            created=ctx.env.clock.now(),
            tags=list(self.tags),
            map_index=map_index,
        )
        ctx.reporter.add(record)
        return TaskRun(self, ctx, dict(bound.arguments), record)

    def __repr__(self) -> str:
        return f"Task({self.name!r})"


def _is_async(fn: Callable[..., Any]) -> bool:
    import inspect

    return inspect.iscoroutinefunction(fn)


def _require_flow(task: Task[..., Any], what: str) -> FlowRunContext:
    ctx = current_flow_run()
    if ctx is None:
        raise RuntimeError(f"task {task.name!r}: .{what}() works inside a @flow; call it instead")
    return ctx


def _run_outside_flow(task: Task[P, R], args: Sequence[Any], kwargs: Mapping[str, Any]) -> R:
    """A task called from plain Python runs as if in a one-task flow."""
    from pushpool.flows import Flow

    def single(*a: Any, **k: Any) -> Any:
        return task(*a, **k)

    single.__name__ = task.name
    return Flow(single, validate_parameters=False)(*args, **kwargs)


def _expand(
    name: str, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> list[tuple[list[Any], dict[str, Any]]]:
    """The per-element calls of a ``.map()``."""
    positional = [_mapped(value) for value in args]
    keywords = {key: _mapped(value) for key, value in kwargs.items()}
    lengths = {len(v) for v in [*positional, *keywords.values()] if isinstance(v, list)}
    if len(lengths) > 1:
        raise ValueError(f"task {name!r}: .map() got iterables of different lengths {lengths}")
    if not lengths:
        raise ValueError(f"task {name!r}: .map() needs at least one iterable argument")
    count = lengths.pop()
    return [
        (
            [v[i] if isinstance(v, list) else v.value for v in positional],
            {k: v[i] if isinstance(v, list) else v.value for k, v in keywords.items()},
        )
        for i in range(count)
    ]


class _Static:
    def __init__(self, value: Any) -> None:
        self.value = value


def _mapped(value: Any) -> Any:
    """A list of the elements to map over, or the value itself if it is static."""
    if isinstance(value, unmapped):
        return _Static(value.value)
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        return _Static(value)
    return list(value)


@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(**options: Unpack[TaskOptions]) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(fn: Callable[P, R] | None = None, /, **options: Any) -> Any:
    """Decorate a function as a task: ``@task`` or ``@task(retries=3, ...)``."""
    return decorator(Task, fn, options)


def decorator(cls: Callable[..., Any], fn: Callable[..., Any] | None, options: Any) -> Any:
    """``cls(fn, **options)``, or (no ``fn``: decorator called with options) a decorator."""
    if fn is not None:
        return cls(fn, **options)
    return lambda inner: cls(inner, **options)
