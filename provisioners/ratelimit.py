"""Pacing a platform's API: a client-side token bucket, and exponential backoff."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; :meth:`acquire` waits for one.

    Waiters reserve their token before sleeping, so concurrent callers queue in order
    and the long-run rate never exceeds ``rate``. ``clock`` and ``sleep`` are injectable.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate, self.burst = rate, burst
        self._clock, self._sleep = clock, sleep
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = threading.Lock()

    def _reserve(self) -> float:
        """Take a token (possibly ahead of time); return how long to wait for it."""
        with self._lock:
            now = self._clock()
            elapsed = max(0.0, now - self._updated)
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
            self._updated = now
            self._tokens -= 1.0
            return -self._tokens / self.rate if self._tokens < 0 else 0.0

    def acquire(self) -> float:
        """Wait until a token is available; return the time waited."""
        wait = self._reserve()
        if wait > 0:
            self._sleep(wait)
        return wait


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: ``attempts`` tries, waiting ``base * 2**n`` (at most ``cap``)."""

    attempts: int = 6
    base: float = 0.5
    cap: float = 8.0

    def delay(self, attempt: int) -> float:
        return float(min(self.cap, self.base * 2**attempt))
