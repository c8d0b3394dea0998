"""What ``@flow`` and ``@task`` share: the wrapped function, its name and the options
both take (retries, their delays, a timeout, result persistence), checked once here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, ParamSpec, TypedDict, TypeVar

from pushpool.retries import RetryDelay, check_delay, check_options, delay_before

P = ParamSpec("P")
R = TypeVar("R")


class CommonOptions(TypedDict, total=False):
    """The keyword options ``@flow`` and ``@task`` both accept."""

    name: str | None
    retries: int
    retry_delay_seconds: RetryDelay
    timeout_seconds: float | None
    persist_result: bool | None


class Decorated(Generic[P, R]):
    """A decorated function with the common options; TypeError/ValueError naming a bad
    option at decoration time."""

    def __init__(
        self,
        fn: Callable[P, R],
        kind: str,
        *,
        name: str | None = None,
        retries: int = 0,
        retry_delay_seconds: RetryDelay = None,
        timeout_seconds: float | None = None,
        persist_result: bool | None = None,
    ) -> None:
        check_options(f"@{kind}", fn, retries, timeout_seconds)
        self.fn = fn
        self.name: str = name or str(getattr(fn, "__name__", kind))
        self.retries = retries
        self.retry_delay_seconds = check_delay(retry_delay_seconds)
        self.timeout_seconds = timeout_seconds
        self.persist_result = persist_result
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def delays(self, retries: int) -> list[float]:
        """The waits before each of ``retries`` further attempts."""
        return [delay_before(n, self.retry_delay_seconds) for n in range(1, retries + 1)]
