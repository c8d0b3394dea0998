"""The dispatcher and reconciler with a cloud-run pool on the emulator: racing dispatchers
and a crash between claim and submit start one execution; a full quota requeues."""

from __future__ import annotations

import threading

import pytest
from emulators.gcp import GcpEmulator
from support.clock import FakeClock
from support.cloud_run import CONFIG
from support.factories import deployment_body

from service.deployments import DeploymentCreate, deploy
from service.models import Deployment, FlowRun
from service.pools import WorkPoolCreate, create_pool
from service.runs import RunCreate, create_run
from service.services import Services
from service.states import StateType


@pytest.fixture
def deployment(services: Services, emulator: GcpEmulator) -> Deployment:
    create_pool(services, WorkPoolCreate(name="cr", type="cloud-run", config=CONFIG))
    body = deployment_body(work_pool="cr", job_variables={"command": ["sleep", "30"]})
    return deploy(services, DeploymentCreate.model_validate(body))[0]


def scheduled(services: Services, deployment: Deployment) -> FlowRun:
    services.store.update_pool("cr", {"paused": True}, services.clock())
    run, _ = create_run(services, deployment.id, RunCreate())
    services.store.update_pool("cr", {"paused": False}, services.clock())
    return run


def test_racing_dispatchers_start_one_execution_per_run(
    services: Services, emulator: GcpEmulator, deployment: Deployment
) -> None:
    runs = [scheduled(services, deployment) for _ in range(5)]
    barrier = threading.Barrier(3)

    def dispatch() -> None:
        barrier.wait()
        services.dispatcher.dispatch_due(10)

    threads = [threading.Thread(target=dispatch) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(emulator.run.jobs) == 5 and len(emulator.run.executions) == 5
    for run in runs:
        after = services.store.get_run(run.id)
        assert after.state.type == StateType.PENDING and after.infra is not None
        assert after.infra.id in emulator.run.jobs


def test_a_crash_after_submit_is_adopted_not_started_again(
    services: Services, clock: FakeClock, emulator: GcpEmulator, deployment: Deployment
) -> None:
    run = scheduled(services, deployment)
    (claimed,) = services.store.claim_due_runs(clock(), 1, lambda _: "h1", run_ids=[run.id])
    provisioner = services.dispatcher.provisioner("cr")
    started = provisioner.submit(services.dispatcher._request(claimed, "token"))
    clock.advance(services.settings.submit_timeout_seconds + 1)
    services.scheduler.tick(clock())
    after = services.store.get_run(run.id)
    assert after.infra == started
    assert len(emulator.run.executions) == 1


def test_a_full_jobs_quota_requeues_the_run(
    services: Services, clock: FakeClock, emulator: GcpEmulator, deployment: Deployment
) -> None:
    emulator.run.max_jobs = 0
    run, _ = create_run(services, deployment.id, RunCreate())
    after = services.store.get_run(run.id)
    assert (after.state.type, after.state.name) == (StateType.SCHEDULED, "AwaitingCapacity")
    assert after.run_count == 0 and after.infra is None
    emulator.run.max_jobs = None
    services.scheduler.tick(clock.advance(61))
    started = services.store.get_run(run.id)
    assert started.state.type == StateType.PENDING and started.infra is not None
    assert len(emulator.run.executions) == 1


def test_a_block_reference_reaches_the_job_as_a_secret_reference_only(
    services: Services, emulator: GcpEmulator
) -> None:
    import json

    from support.blocks import dispatched_with_secret

    marker = "marker-dispatch-cloud-run-5a1e"
    config = {**CONFIG, "service_account": "runner@demo-project.iam.gserviceaccount.com"}
    after = dispatched_with_secret(services, "cloud-run", config, marker)
    job = emulator.run.jobs[after.infra.id]
    assert marker not in json.dumps(job)
    [container] = job["template"]["template"]["containers"]
    plain = {e["name"]: e.get("value") for e in container["env"] if "value" in e}
    refs = {e["name"]: e["valueSource"] for e in container["env"] if "valueSource" in e}
    assert plain["MODE"] == "x" and plain["PUSHPOOL_SECRET_ENV"] == "DB_PASSWORD"
    ref = refs["DB_PASSWORD"]["secretKeyRef"]
    assert emulator.secrets.value(f"{ref['secret']}/versions/{ref['version']}") == marker
