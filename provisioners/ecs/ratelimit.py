"""A client-side token bucket, so bursts of submissions stay under ECS's API rate.

ECS allows ``RunTask`` 20 requests per second sustained with a burst of 100 (per account
and region). :func:`run_task_limiter` hands out one bucket per region, shared by every
pool in this process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

RUN_TASK_RATE = 20.0
RUN_TASK_BURST = 100


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; :meth:`acquire` waits for one.

    Waiters reserve their token before sleeping, so concurrent callers queue in order
    and the long-run rate never exceeds ``rate``. ``clock`` and ``sleep`` are injectable.
    """

    def __init__(
        self,
        rate: float = RUN_TASK_RATE,
        burst: int = RUN_TASK_BURST,
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


_limiters: dict[str, TokenBucket] = {}
_limiters_lock = threading.Lock()


def run_task_limiter(region: str) -> TokenBucket:
    """The process-wide ``RunTask`` bucket for ``region``."""
    with _limiters_lock:
        if region not in _limiters:
            _limiters[region] = TokenBucket()
        return _limiters[region]
