"""The control plane dispatching to an ACI pool: racing dispatchers and a dispatcher that
dies between claim and submit (or after the PUT) make one container group, not two."""

from __future__ import annotations

import threading

from emulators.azure.server import Emulator
from support.clock import FakeClock
from support.factories import deployment_body

from service.deployments import DeploymentCreate, deploy
from service.models import FlowRun
from service.runs import RunCreate, create_run
from service.services import Services
from service.states import StateType


def scheduled(services: Services, clock: FakeClock, n: int) -> list[FlowRun]:
    body = deployment_body(work_pool="azure", source={"type": "image"})
    dep = deploy(services, DeploymentCreate.model_validate(body))[0]
    services.store.update_pool("azure", {"paused": True}, clock())
    runs = [create_run(services, dep.id, RunCreate())[0] for _ in range(n)]
    services.store.update_pool("azure", {"paused": False}, clock())
    return runs


def test_racing_dispatchers_create_one_group_per_run(
    aci_services: tuple[Services, Emulator], clock: FakeClock
) -> None:
    services, emulator = aci_services
    runs = scheduled(services, clock, 6)
    barrier = threading.Barrier(4)

    def dispatch() -> None:
        barrier.wait()
        services.dispatcher.dispatch_due(10)

    threads = [threading.Thread(target=dispatch) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(emulator.azure.groups) == 6
    assert len(emulator.azure.calls("PUT", "/containerGroups/")) == 6
    for run in runs:
        assert services.store.get_run(run.id).infra is not None


def test_a_crash_between_claim_and_submit_creates_one_group(
    aci_services: tuple[Services, Emulator], clock: FakeClock
) -> None:
    services, emulator = aci_services
    (run,) = scheduled(services, clock, 1)
    services.store.claim_due_runs(clock(), 1, lambda _: "lost", run_ids=[run.id])
    clock.advance(services.settings.submit_timeout_seconds + 1)
    assert services.scheduler.tick(clock()).reconcile.resubmitted == 1
    assert services.store.get_run(run.id).infra is not None
    assert len(emulator.azure.groups) == 1


def test_a_crash_after_the_put_adopts_the_group(
    aci_services: tuple[Services, Emulator], clock: FakeClock
) -> None:
    services, emulator = aci_services
    (run,) = scheduled(services, clock, 1)
    (claimed,) = services.store.claim_due_runs(clock(), 1, lambda _: "h1", run_ids=[run.id])
    provisioner = services.dispatcher.provisioner("azure")
    started = provisioner.submit(services.dispatcher._request(claimed, "token"))
    clock.advance(services.settings.submit_timeout_seconds + 1)
    services.scheduler.tick(clock())
    after = services.store.get_run(run.id)
    assert after.infra == started and after.token_hash == "h1"
    assert len(emulator.azure.calls("PUT", "/containerGroups/")) == 1


def test_a_transient_arm_error_never_strands_a_run(
    aci_services: tuple[Services, Emulator], clock: FakeClock
) -> None:
    services, emulator = aci_services
    (run,) = scheduled(services, clock, 1)
    emulator.azure.inject("PUT", "/containerGroups/", 503, "InternalServerError", times=10)
    services.scheduler.tick(clock())
    assert services.store.get_run(run.id).infra is None  # left PENDING, retried later
    emulator.azure.faults.clear()
    clock.advance(services.settings.submit_timeout_seconds + 1)
    services.scheduler.tick(clock())
    after = services.store.get_run(run.id)
    assert after.state.type == StateType.PENDING and after.infra is not None
    assert len(emulator.azure.groups) == 1
