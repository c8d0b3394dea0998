"""Retry delays: a number, a list, or :func:`exponential_backoff`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

RetryDelay = float | int | Sequence[float | int] | None


def exponential_backoff(backoff_factor: float, retries: int = 10) -> list[float]:
    """Delays ``factor * 2**n`` for ``n = 0 .. retries-1`` (``[f, 2f, 4f, ...]``)."""
    if backoff_factor < 0:
        raise ValueError(f"backoff_factor must not be negative, not {backoff_factor}")
    return [backoff_factor * 2**n for n in range(retries)]


def check_delay(delay: RetryDelay) -> RetryDelay:
    """Return ``delay`` if every delay in it is a non-negative number, else ValueError."""
    values = [] if delay is None else [delay] if isinstance(delay, int | float) else list(delay)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"retry_delay_seconds must be non-negative numbers, not {delay!r}")
    return delay


def delay_before(retry: int, delay: RetryDelay) -> float:
    """Seconds to wait before retry number ``retry`` (1-based); a list's last value repeats."""
    if delay is None:
        return 0.0
    if isinstance(delay, int | float):
        return float(delay)
    if not delay:
        return 0.0
    return float(delay[min(retry, len(delay)) - 1])


def check_options(what: str, fn: Any, retries: Any, timeout_seconds: Any) -> None:
    """The options ``@flow`` and ``@task`` share: TypeError/ValueError naming the bad one."""
    if not callable(fn):
        raise TypeError(f"{what} needs a function, not {type(fn).__name__}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be a non-negative integer, not {retries!r}")
    if timeout_seconds is not None and timeout_seconds <= 0:
        raise ValueError(f"timeout_seconds must be positive, not {timeout_seconds!r}")
