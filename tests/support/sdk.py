"""SDK test helpers: a run environment with an in-memory reporter, a temp result store and
a controllable clock (sleeps are recorded, not slept)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pushpool._clock import Clock
from pushpool.context import RunEnvironment
from pushpool.records import TaskRunRecord
from pushpool.reporting import LocalReporter
from pushpool.results import LocalResultStore


@dataclass
class Time:
    """A settable wall clock whose sleeps advance it and are recorded."""

    current: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    mono: float = 0.0
    slept: list[float] = field(default_factory=list)

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)
        self.mono += seconds

    def clock(self) -> Clock:
        return Clock(
            now=self.now, monotonic=self.monotonic, sleep=self.sleep, async_sleep=self.async_sleep
        )


@dataclass
class Env:
    reporter: LocalReporter
    store: LocalResultStore
    time: Time
    env: RunEnvironment

    def runs(self, name: str | None = None) -> list[TaskRunRecord]:
        records = sorted(self.reporter.task_runs.values(), key=lambda r: r.name)
        return [r for r in records if name is None or r.name.split("[")[0] == name]
