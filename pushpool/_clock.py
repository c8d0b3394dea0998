"""The clock and sleep the SDK uses; injected so tests control time."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime


def utc_now() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


async def async_sleep(seconds: float) -> None:
    """``asyncio.sleep`` (asyncio is imported only when an async flow needs it)."""
    import asyncio

    await asyncio.sleep(seconds)


@dataclass(frozen=True)
class Clock:
    """``now()`` for timestamps, ``monotonic()`` for durations, ``sleep()`` and
    ``async_sleep()`` for delays."""

    now: Callable[[], datetime] = field(default=utc_now)
    monotonic: Callable[[], float] = field(default=time.monotonic)
    sleep: Callable[[float], None] = field(default=time.sleep)
    async_sleep: Callable[[float], Awaitable[None]] = field(default=async_sleep)


SYSTEM_CLOCK = Clock()
