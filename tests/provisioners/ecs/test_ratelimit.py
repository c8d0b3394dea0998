"""The client-side RunTask limiter: ECS's 20/s sustained, burst 100, never exceeded."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from provisioners.base import SubmitRequest
from provisioners.ecs import EcsProvisioner
from provisioners.ecs.ratelimit import RUN_TASK_BURST, RUN_TASK_RATE, TokenBucket, run_task_limiter

EPSILON = 1e-9


@dataclass
class FakeTime:
    """A monotonic clock that only moves when someone sleeps."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def worst_excess(times: list[float], rate: float, burst: int) -> float:
    """max over windows [i, j] of calls - (burst + rate * span): > 0 means too fast."""
    worst = -float(burst)
    for i in range(len(times)):
        for j in range(i, len(times)):
            worst = max(worst, (j - i + 1) - (burst + rate * (times[j] - times[i])))
    return worst


def test_a_burst_of_a_thousand_stays_within_the_rate() -> None:
    clock = FakeTime()
    bucket = TokenBucket(RUN_TASK_RATE, RUN_TASK_BURST, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(1000):
        bucket.acquire()
        times.append(clock())
    assert worst_excess(times, RUN_TASK_RATE, RUN_TASK_BURST) <= EPSILON
    assert times[RUN_TASK_BURST - 1] == times[0]  # the burst goes at once
    assert times[-1] - times[0] == pytest.approx((1000 - RUN_TASK_BURST) / RUN_TASK_RATE)


def test_an_idle_bucket_refills_to_its_burst_only() -> None:
    clock = FakeTime()
    bucket = TokenBucket(rate=2, burst=3, clock=clock, sleep=clock.sleep)
    assert [bucket.acquire() for _ in range(4)] == [0, 0, 0, 0.5]
    clock.now += 3600
    assert [bucket.acquire() for _ in range(4)] == [0, 0, 0, 0.5]


def test_concurrent_callers_share_the_rate() -> None:
    lock = threading.Lock()
    clock = FakeTime()
    times: list[float] = []
    bucket = TokenBucket(rate=50, burst=5, clock=clock, sleep=lambda s: None)

    def worker() -> None:
        for _ in range(20):
            wait = bucket.acquire()
            with lock:
                times.append(clock() + wait)  # when this caller's token was due

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert worst_excess(sorted(times), 50, 5) <= EPSILON


def test_one_bucket_per_region_for_the_whole_process() -> None:
    assert run_task_limiter("eu-west-1") is run_task_limiter("eu-west-1")
    assert run_task_limiter("eu-west-1") is not run_task_limiter("eu-west-2")


class EcsRateModel:
    """ECS's own RunTask throttling, on the same fake clock: over the rate, it throttles."""

    def __init__(self, clock: FakeTime, error: Callable[..., Exception]) -> None:
        self.clock, self.error = clock, error
        self.tokens, self.updated = float(RUN_TASK_BURST), clock()
        self.times: list[float] = []
        self.throttled = 0

    def admit(self) -> None:
        now = self.clock()
        self.tokens = min(RUN_TASK_BURST, self.tokens + (now - self.updated) * RUN_TASK_RATE)
        self.updated = now
        if self.tokens < 1 - EPSILON:
            self.throttled += 1
            raise self.error("ThrottlingException", "Rate exceeded")
        self.tokens -= 1
        self.times.append(now)


def test_a_thousand_due_runs_are_submitted_without_one_throttle(
    make_provisioner: Callable[..., EcsProvisioner],
    aws: Any,
    request_for: Callable[..., SubmitRequest],
    make_client_error: Any,
    tasks_pinned: None,
) -> None:
    clock = FakeTime()
    ecs = EcsRateModel(clock, make_client_error)

    def run_task(params: dict[str, Any]) -> Any:
        ecs.admit()
        return aws.real("ecs").run_task(**params)

    aws.fail("run_task", *[run_task] * 1000)
    provisioner = make_provisioner(
        limiter=TokenBucket(RUN_TASK_RATE, RUN_TASK_BURST, clock=clock, sleep=clock.sleep)
    )
    refs = [provisioner.submit(request_for()) for _ in range(1000)]
    assert len({r.id for r in refs}) == 1000
    assert ecs.throttled == 0 and len(ecs.times) == 1000
    assert worst_excess(ecs.times, RUN_TASK_RATE, RUN_TASK_BURST) <= EPSILON
    assert clock.now - 1000.0 == pytest.approx(45.0)  # (1000 - 100) / 20 s
