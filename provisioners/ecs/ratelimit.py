"""A client-side token bucket, so bursts of submissions stay under ECS's API rate.

ECS allows ``RunTask`` 20 requests per second sustained with a burst of 100 (per account
and region). :func:`run_task_limiter` hands out one bucket per region, shared by every
pool in this process.
"""

from __future__ import annotations

import threading

from provisioners.ratelimit import TokenBucket

RUN_TASK_RATE = 20.0
RUN_TASK_BURST = 100


_limiters: dict[str, TokenBucket] = {}
_limiters_lock = threading.Lock()


def run_task_limiter(region: str) -> TokenBucket:
    """The process-wide ``RunTask`` bucket for ``region``."""
    with _limiters_lock:
        if region not in _limiters:
            _limiters[region] = TokenBucket(RUN_TASK_RATE, RUN_TASK_BURST)
        return _limiters[region]
