"""The quota limiter alone (fake clock), then the whole control plane: 1,000 runs due at
once on an ACI pool, and not one window of the emulator over ACI's create quotas."""

from __future__ import annotations

import pytest
from emulators.azure.drive import due_at_once, run_to_completion
from emulators.azure.server import Emulator
from support.clock import FakeClock

from provisioners.aci.models import QuotaLimits
from provisioners.aci.quota import QuotaLimiter
from service.services import Services
from service.states import StateType

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
    runs = due_at_once(services, clock, "azure", 1000)
    run_to_completion(services, clock, tick_seconds=300, max_ticks=100)
    states = [services.store.get_run(r).state.type for r in runs]
    assert states.count(StateType.COMPLETED) == 1000, {s: states.count(s) for s in set(states)}
    a = emulator.azure
    assert len(a.create_times) == len(a.delete_times) == 1000 and a.groups == {}
    for times in (a.create_times, a.delete_times):
        per_5_minutes, per_hour = a.window_peaks(times)
        assert per_5_minutes <= 100 and per_hour <= 300, (per_5_minutes, per_hour)
    puts = a.calls("PUT", "/containerGroups/")
    assert len(puts) == 1000  # the limiter kept every create inside: ARM refused none
    history = [s.name for r in runs[-50:] for s in services.store.state_history(r)]
    assert "AwaitingCapacity" in history
