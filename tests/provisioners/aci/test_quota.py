"""The quota limiter alone (fake clock), then the whole control plane: 1,000 runs due at
once on an ACI pool, and not one window of the emulator over ACI's create quotas."""

from __future__ import annotations

import pytest
from emulators.azure.drive import due_at_once, run_to_completion
from emulators.azure.server import Emulator
from support.clock import FakeClock

from provisioners.aci.models import QuotaLimits
from provisioners.aci.quota import QuotaLimiter, StoreWindows, limiter_for, window_key
from service.services import Services
from service.states import StateType
from service.store.base import Store

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


def _peak(times: list[float], span: float) -> int:
    times = sorted(times)
    return max((sum(1 for u in times if t - span < u <= t) for t in times), default=0)


@pytest.mark.parametrize("sharing", [True, False])
def test_two_limiters_sharing_a_store_never_exceed_the_windows_together(
    store: Store, sharing: bool
) -> None:
    """Two control-plane processes (two limiters, one store) racing in threads: creates
    admitted by both together stay inside each window; apart, each fills its own."""
    import threading

    clock = Seconds()
    limits = QuotaLimits(creates_per_5_minutes=5, creates_per_hour=12, max_groups=10**6,
                         max_cores=10**6)  # fmt: skip
    shared = [StoreWindows(store, window_key("s", "westeurope")) for _ in range(2)]
    limiters = [QuotaLimiter(clock, w if sharing else None) for w in shared]
    admitted: list[float] = []
    lock = threading.Lock()

    def dispatcher(n: int, limiter: QuotaLimiter) -> None:
        for i in range(8):
            if limiter.try_create(gid(n * 100 + i), 1, limits) is None:
                with lock:
                    admitted.append(clock())

    # moto's in-process DynamoDB does not lock between a condition and its write (real
    # DynamoDB does): there the two take turns instead of racing in threads.
    racing = type(store).__name__ != "DynamoStore"
    for step in range(16):
        clock.now = step * 100.0
        threads = [threading.Thread(target=dispatcher, args=(n, lim)) for n, lim in
                   enumerate(limiters)]  # fmt: skip
        for th in threads:
            th.start()
            if not racing:
                th.join()
        for th in threads:
            th.join()
    peaks = (_peak(admitted, 300.0), _peak(admitted, 3600.0))
    if sharing:
        assert peaks == (5, 12)
    else:  # what per-process windows would do: each admits its own share
        assert peaks == (10, 24)


def test_the_service_hands_its_store_to_aci_limiters(
    aci_services: tuple[Services, Emulator],
) -> None:
    from provisioners.aci import quota

    services, _ = aci_services
    assert services.dispatcher.provisioner("azure").shared is services.store
    limiter = limiter_for("sub-x", "westeurope", services.store)
    try:
        assert limiter.try_create(gid(1), 1, QuotaLimits()) is None
        raw = services.store.get_meta(window_key("sub-x", "westeurope") + "/creates")
        assert raw is not None and len(__import__("json").loads(raw)) == 1
    finally:
        quota._limiters.pop(("sub-x", "westeurope"), None)


@pytest.mark.slow
@pytest.mark.timeout(900)  # ~90 s alone; a loaded 2-core machine can triple it
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
