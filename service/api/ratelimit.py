"""A per-key request rate limit: one token bucket per API key, in this process.

Under uvicorn that is the whole service. On Lambda each execution environment keeps its
own buckets, so the limit there is per environment; the AWS template adds API Gateway
stage throttling and reserved concurrency for the function as the service-wide bound.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """``rate`` requests a second per key, in bursts of up to ``burst``; ``rate`` 0: off.

    Memory stays bounded with many short-lived keys (run tokens): once more than
    ``max_keys`` buckets exist, those full again (idle long enough to refill, so the same
    as a new one) are dropped."""

    def __init__(
        self,
        rate: float,
        burst: int,
        monotonic: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.rate, self.burst = rate, max(1, burst)
        self._monotonic = monotonic
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def _prune(self, now: float) -> None:
        self._buckets = {
            key: bucket
            for key, bucket in self._buckets.items()
            if bucket.tokens + (now - bucket.at) * self.rate < self.burst
        }

    def acquire(self, key_id: str) -> float:
        """Take one request for ``key_id``: 0 if allowed, else the seconds until it would be."""
        if self.rate <= 0:
            return 0.0
        now = self._monotonic()
        with self._lock:
            if len(self._buckets) >= self._max_keys and key_id not in self._buckets:
                self._prune(now)
            bucket = self._buckets.setdefault(key_id, _Bucket(float(self.burst), now))
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / self.rate


def retry_after(wait: float) -> str:
    """A ``Retry-After`` value: whole seconds, at least 1."""
    return str(max(1, math.ceil(wait)))
