"""Driving the control plane over an ACI pool under a fake clock (tests and benchmarks)."""

from __future__ import annotations

from support.clock import FakeClock
from support.factories import deployment_body

from service.deployments import DeploymentCreate, deploy
from service.runs import RunCreate, create_run
from service.services import Services
from service.states import StateType, set_state

WAITING = sorted({StateType.SCHEDULED, StateType.PENDING})


def due_at_once(services: Services, clock: FakeClock, pool: str, n: int) -> list[str]:
    """``n`` runs of one deployment on ``pool``, all due now and none dispatched yet."""
    body = deployment_body(work_pool=pool, source={"type": "image"})
    dep = deploy(services, DeploymentCreate.model_validate(body))[0]
    services.store.update_pool(pool, {"paused": True}, clock())
    runs = [create_run(services, dep.id, RunCreate())[0].id for _ in range(n)]
    services.store.update_pool(pool, {"paused": False}, clock())
    return runs


def run_to_completion(
    services: Services, clock: FakeClock, *, tick_seconds: float, max_ticks: int
) -> int:
    """Tick every ``tick_seconds`` until no run waits; the runner (played here) completes
    each run as soon as it has infrastructure. Returns the ticks it took."""
    for ticks in range(1, max_ticks + 1):
        services.scheduler.tick(clock.advance(tick_seconds))
        for run in services.store.runs_in_states([StateType.PENDING], 10_000):
            if run.infra is not None:
                set_state(services.store, run.id, StateType.RUNNING, now=clock())
                set_state(services.store, run.id, StateType.COMPLETED, now=clock())
        if not services.store.runs_in_states(WAITING, 1):
            services.scheduler.tick(clock.advance(tick_seconds))  # the last teardowns
            return ticks
    raise AssertionError(f"runs still waiting after {max_ticks} ticks")
