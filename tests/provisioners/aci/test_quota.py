"""The quota limiter alone (fake clock), then the whole control plane: 1,000 runs due at
once on an ACI pool, and not one window of the emulator over ACI's create quotas."""

from __future__ import annotations

import pytest
from emulators.azure.server import Emulator
from support.clock import FakeClock
from support.factories import deployment_body

from provisioners.aci.models import QuotaLimits
from provisioners.aci.quota import QuotaLimiter
from service.deployments import DeploymentCreate, deploy
from service.runs import RunCreate, create_run
from service.services import Services
from service.states import StateType, set_state
from service.store.base import RunFilter

RG = "/subscriptions/s/resourceGroups/rg"


class Seconds:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def gid(i: int) -> str:
    return f"{RG}/providers/Microsoft.ContainerInstance/containerGroups/g{i}"


def test_creates_per_five_minutes_and_per_hour() -> None:
    clock, limits = Seconds(), QuotaLimits(max_groups=10_000, max_cores=10_000)
    limiter = QuotaLimiter(clock)
    assert all(limiter.try_create(gid(i), 1, limits) is None for i in range(100))
    refusal = limiter.try_create(gid(100), 1, limits)
    assert refusal is not None and 300 <= refusal.retry_after_seconds < 600
    clock.now = 300.0
    assert all(limiter.try_create(gid(i), 1, limits) is None for i in range(100, 200))
    clock.now = 600.0
    assert all(limiter.try_create(gid(i), 1, limits) is None for i in range(200, 300))
    clock.now = 900.0  # the 5-minute window is free, the hour is not
    refusal = limiter.try_create(gid(300), 1, limits)
    assert refusal is not None and refusal.retry_after_seconds >= 3600 - 900
    clock.now = 3600.0
    assert limiter.try_create(gid(300), 1, limits) is None


def test_groups_and_cores_per_region_and_observe() -> None:
    limiter, limits = QuotaLimiter(Seconds()), QuotaLimits(max_groups=2, max_cores=3)
    assert limiter.try_create(gid(1), 2, limits) is None
    refusal = limiter.try_create(gid(2), 2, limits)
    assert refusal is not None and "cores" in refusal.reason
    assert limiter.try_create(gid(2), 1, limits) is None
    refusal = limiter.try_create(gid(3), 0.5, limits)
    assert refusal is not None and "2 container groups of 2" in refusal.reason
    limiter.gone(gid(1))
    assert limiter.try_create(gid(3), 0.5, limits) is None
    limiter.observe(RG, [(gid(3), 0.5)])  # ARM lists only g3 now
    assert limiter.live() == (1, 0.5)


def test_deletes_have_their_own_windows() -> None:
    limiter, limits = QuotaLimiter(Seconds()), QuotaLimits(deletes_per_5_minutes=2)
    assert limiter.try_delete(gid(1), limits) is None
    assert limiter.try_delete(gid(2), limits) is None
    assert limiter.try_delete(gid(3), limits) is not None
    assert limiter.try_create(gid(3), 1, limits) is None


@pytest.mark.slow
def test_a_thousand_runs_due_at_once_all_complete_within_the_quota(
    aci_services: tuple[Services, Emulator], clock: FakeClock
) -> None:
    services, emulator = aci_services
    body = deployment_body(work_pool="azure", source={"type": "image"})
    dep = deploy(services, DeploymentCreate.model_validate(body))[0]
    services.store.update_pool("azure", {"paused": True}, clock())
    runs = [create_run(services, dep.id, RunCreate())[0].id for _ in range(1000)]
    services.store.update_pool("azure", {"paused": False}, clock())
    for _ in range(100):  # one tick every 5 minutes, for up to 8 hours and 20 minutes
        services.scheduler.tick(clock.advance(300))
        pending = services.store.runs_in_states([StateType.PENDING], 1000)
        for run in pending:  # the runner starts and completes each run it is given
            if run.infra is not None:
                set_state(services.store, run.id, StateType.RUNNING, now=clock())
                set_state(services.store, run.id, StateType.COMPLETED, now=clock())
        if not services.store.runs_in_states(sorted({StateType.SCHEDULED, StateType.PENDING}), 1):
            break
    services.scheduler.tick(clock.advance(60))  # the last teardowns
    states = [services.store.get_run(r).state.type for r in runs]
    assert states.count(StateType.COMPLETED) == 1000, {s: states.count(s) for s in set(states)}
    a = emulator.azure
    assert len(a.create_times) == 1000
    assert a.window_peaks(a.create_times) <= (100, 300)
    assert a.window_peaks(a.delete_times) <= (100, 300)
    refused = [r for r in a.requests if r.method == "PUT" and "containerGroups" in r.path]
    assert len(refused) == 1000  # the limiter kept every create inside: ARM refused none
    assert a.groups == {}  # every group deleted
    waited = services.store.list_runs(RunFilter(), 1000).items
    assert any(
        s.name == "AwaitingCapacity"
        for r in waited[:50]
        for s in services.store.state_history(r.id)
    )
    hours = (a.create_times[-1] - a.create_times[0]) / 3600
    print(f"\n1,000 runs submitted in {hours:.2f} h of fake time (quota bound: 3.05 h)")
