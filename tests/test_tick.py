"""The tick with an injected clock: materialisation, DST, catch-up, races, redeploys, pausing."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from support.clock import FakeClock
from support.factories import deployment_body, process_pool

from service.deployments import DeploymentCreate, DeploymentUpdate, deploy, update
from service.models import Deployment, FlowRun
from service.pools import WorkPoolCreate, create_pool
from service.services import Services
from service.states import StateType
from service.store.base import RunFilter

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def paused_pool(services: Services) -> str:
    """A paused pool: runs are materialised and stay put, nothing is dispatched."""
    create_pool(services, WorkPoolCreate.model_validate(process_pool("hold", paused=True)))
    return "hold"


def _deploy(services: Services, pool: str, **overrides: Any) -> Deployment:
    body = DeploymentCreate.model_validate(deployment_body(work_pool=pool, **overrides))
    return deploy(services, body)[0]


def _runs(services: Services, dep: Deployment) -> list[FlowRun]:
    page = services.store.list_runs(RunFilter(deployment_id=dep.id), 10_000)
    return sorted(page.items, key=lambda r: r.expected_start)


def _tick_through(services: Services, clock: FakeClock, until: datetime, step: timedelta) -> None:
    while clock.now < until:
        services.scheduler.tick(clock.now)
        clock.advance(step.total_seconds())


def _cron(cron: str, tz: str = "Europe/Berlin") -> dict[str, Any]:
    return {"schedules": [{"kind": "cron", "cron": cron, "timezone": tz}], "catchup": "all"}


def test_daily_0900_berlin_fires_once_a_day_across_both_changes(
    services: Services, clock: FakeClock, paused_pool: str
) -> None:
    for start in (datetime(2026, 3, 26, tzinfo=UTC), datetime(2026, 10, 22, tzinfo=UTC)):
        clock.set(start)
        dep = _deploy(services, paused_pool, name=f"d{start.month}", **_cron("0 9 * * *"))
        _tick_through(services, clock, start + timedelta(days=6), timedelta(minutes=30))
        runs = [r for r in _runs(services, dep) if r.expected_start < start + timedelta(days=6)]
        local = [r.expected_start.astimezone(BERLIN) for r in runs]
        assert all((t.hour, t.minute) == (9, 0) for t in local)
        per_day = Counter(t.date() for t in local)
        assert len(per_day) == 6 and set(per_day.values()) == {1}


def test_daily_0230_berlin_on_both_change_days(
    services: Services, clock: FakeClock, paused_pool: str
) -> None:
    clock.set(datetime(2026, 3, 27, tzinfo=UTC))
    spring = _deploy(services, paused_pool, name="spring", **_cron("30 2 * * *"))
    _tick_through(services, clock, datetime(2026, 3, 31, tzinfo=UTC), timedelta(hours=1))
    starts = [r.expected_start for r in _runs(services, spring)]
    assert datetime(2026, 3, 29, 1, 0, tzinfo=UTC) in starts  # 03:00 CEST, after the gap
    on_day = [s for s in starts if s.astimezone(BERLIN).date().isoformat() == "2026-03-29"]
    assert len(on_day) == 1

    clock.set(datetime(2026, 10, 23, tzinfo=UTC))
    autumn = _deploy(services, paused_pool, name="autumn", **_cron("30 2 * * *"))
    _tick_through(services, clock, datetime(2026, 10, 27, tzinfo=UTC), timedelta(hours=1))
    starts = [r.expected_start for r in _runs(services, autumn)]
    on_day = [s for s in starts if s.astimezone(BERLIN).date().isoformat() == "2026-10-25"]
    assert on_day == [datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]  # the first 02:30 (CEST) only


def test_hourly_wildcard_fires_every_real_hour(
    services: Services, clock: FakeClock, paused_pool: str
) -> None:
    for start in (datetime(2026, 3, 28, 12, tzinfo=UTC), datetime(2026, 10, 24, 12, tzinfo=UTC)):
        clock.set(start)
        dep = _deploy(services, paused_pool, name=f"h{start.month}", **_cron("0 * * * *"))
        _tick_through(services, clock, start + timedelta(days=2), timedelta(minutes=20))
        starts = [r.expected_start for r in _runs(services, dep)]
        gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(starts)}
        assert gaps == {3600.0}
        assert len(starts) >= 48


def test_interval_schedule(services: Services, clock: FakeClock, paused_pool: str) -> None:
    clock.set(datetime(2026, 6, 1, 12, 3, tzinfo=UTC))
    dep = _deploy(
        services,
        paused_pool,
        schedules=[{"kind": "interval", "interval_seconds": 600}],
        catchup="all",
    )
    services.scheduler.tick(clock.now)
    starts = [r.expected_start for r in _runs(services, dep)]
    assert starts[0] == datetime(2026, 6, 1, 12, 10, tzinfo=UTC)
    assert {(b - a).total_seconds() for a, b in itertools.pairwise(starts)} == {600.0}
    assert starts[-1] <= clock.now + timedelta(hours=1)


def test_racing_ticks_create_each_run_once(
    services: Services, clock: FakeClock, paused_pool: str
) -> None:
    deps = [_deploy(services, paused_pool, name=f"r{i}", **_cron("*/5 * * * *")) for i in range(5)]
    barrier = threading.Barrier(4)

    def tick() -> None:
        barrier.wait()
        services.scheduler.tick(clock.now)

    threads = [threading.Thread(target=tick) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for dep in deps:
        starts = [r.expected_start for r in _runs(services, dep)]
        assert len(starts) == len(set(starts)) == 12  # every 5 min for the next hour


def test_redeploy_unchanged_keeps_runs(
    services: Services, clock: FakeClock, paused_pool: str
) -> None:
    dep = _deploy(services, paused_pool, **_cron("*/15 * * * *"))
    services.scheduler.tick(clock.now)
    before = [r.id for r in _runs(services, dep)]
    clock.advance(60)
    again = _deploy(services, paused_pool, **_cron("*/15 * * * *"))
    services.scheduler.tick(clock.now)
    assert again.id == dep.id
    assert [r.id for r in _runs(services, dep)] == before

    _deploy(services, paused_pool, **_cron("*/20 * * * *"))
    services.scheduler.tick(clock.now)
    minutes = {r.expected_start.minute for r in _runs(services, dep)}
    assert minutes <= {0, 20, 40}


def test_pause_drops_future_runs_and_resume_starts_from_now(
    services: Services, clock: FakeClock, paused_pool: str
) -> None:
    schedules = _cron("*/10 * * * *")["schedules"]
    dep = _deploy(services, paused_pool, catchup="none", schedules=schedules)
    services.scheduler.tick(clock.now)
    assert _runs(services, dep)
    update(services, dep.id, DeploymentUpdate(paused=True))
    assert _runs(services, dep) == []
    clock.advance(3 * 3600)
    services.scheduler.tick(clock.now)
    assert _runs(services, dep) == []
    update(services, dep.id, DeploymentUpdate(paused=False))
    services.scheduler.tick(clock.now)
    runs = _runs(services, dep)
    assert runs and all(r.expected_start > clock.now for r in runs)
    assert all(r.state.type == StateType.SCHEDULED for r in runs)


@pytest.mark.parametrize(
    ("policy", "expect_late_scheduled"), [("all", 17), ("latest", 1), ("none", 0)]
)
def test_catchup_policies(
    services: Services, clock: FakeClock, paused_pool: str, policy: str, expect_late_scheduled: int
) -> None:
    clock.set(datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC))
    dep = _deploy(
        services,
        paused_pool,
        catchup=policy,
        schedules=[{"kind": "cron", "cron": "*/10 * * * *"}],
    )
    services.scheduler.tick(clock.now)  # materialises the next hour
    clock.advance(3 * 3600)  # the scheduler was down for three hours
    services.scheduler.tick(clock.now)
    late = [r for r in _runs(services, dep) if r.expected_start < clock.now - timedelta(minutes=2)]
    assert len(late) == 17  # 12:10 … 14:50: every missed slot is accounted for
    scheduled = [r for r in late if r.state.type == StateType.SCHEDULED]
    skipped = [r for r in late if r.state.name == "Skipped"]
    assert len(scheduled) == expect_late_scheduled
    assert len(skipped) == 17 - expect_late_scheduled
    assert all(r.state.type == StateType.CANCELLED for r in skipped)
    if policy == "latest":
        assert scheduled[0].expected_start == max(r.expected_start for r in late)


def test_tick_cost_follows_due_schedules(
    services: Services, clock: FakeClock, paused_pool: str
) -> None:
    """Deployments whose next run is far away are not even looked at."""
    for i in range(30):
        _deploy(services, paused_pool, name=f"y{i}", **_cron("0 0 1 1 *"))
    services.scheduler.tick(clock.now)
    clock.advance(600)
    report = services.scheduler.tick(clock.now)
    assert report.schedules == 0 and report.materialised == 0


def test_loop_wakes_when_the_next_run_is_due(
    services: Services, clock: FakeClock, paused_pool: str
) -> None:
    from service.app import seconds_until_next_tick

    interval = services.settings.tick_interval_seconds
    assert seconds_until_next_tick(services) == interval
    clock.set(datetime(2026, 6, 1, 12, 0, 58, tzinfo=UTC))
    _deploy(services, paused_pool, schedules=[{"kind": "cron", "cron": "* * * * *"}])
    services.scheduler.tick(clock.now)
    assert seconds_until_next_tick(services) == pytest.approx(2.0)


def test_materialised_runs_record_their_first_state_event_once(
    services: Services, clock: FakeClock, paused_pool: str
) -> None:
    """As an API-created run does: ``pushpool.flow-run.Scheduled`` for each new run; a
    second tick materialising the same slot (a race) records no second event."""
    from service.event_records import EventFilter
    from service.scheduler import _state_event

    dep = _deploy(services, paused_pool, **_cron("0 * * * *", "UTC"))
    services.scheduler.tick(clock.now)
    runs = _runs(services, dep)
    assert runs
    listed = services.store.list_events(EventFilter(names=("pushpool.flow-run.*",)), 1000).items
    assert sorted(e.resource.id for e in listed) == sorted(
        f"pushpool.flow-run.{r.id}" for r in runs
    )
    assert {e.name for e in listed} == {"pushpool.flow-run.Scheduled"}
    assert {e.resource.labels["deployment"] for e in listed} == {dep.name}
    services.store.append_events([_state_event(runs[0])])  # recorded again: stored once
    again = services.store.list_events(EventFilter(names=("pushpool.flow-run.*",)), 1000)
    assert len(again.items) == len(listed)
