"""The happy path and a failing run against drongo, an independent Cloud Run double, in
process, through the real ``google-cloud-run`` client.

drongo ignores ``startExecutionToken`` (no execution is made on create), so the test
starts the execution Cloud Run would have started, with ``run_job`` through the real
client; drongo's job handler stands in for the container. drongo has no running state,
task exit codes or cancel: those are tested against tests/emulators/gcp.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from support.cloud_run import CONFIG, POOL, request_for

from provisioners.base import InfraState
from provisioners.cloud_run import CloudRunProvisioner
from provisioners.cloud_run.gcp import EMULATOR_ENV


@pytest.fixture
def drongo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from drongo import mock_gcp

    monkeypatch.delenv(EMULATOR_ENV, raising=False)
    with mock_gcp():
        yield


def run_execution(job_name: str, container: Callable[[], None]) -> None:
    """Play Cloud Run starting the job's execution, with ``container`` as its workload."""
    from drongo import cloudrun
    from google.cloud import run_v2

    cloudrun.register_job_handler(job_name, container)
    run_v2.JobsClient().run_job(name=job_name).result()


@pytest.mark.usefixtures("drongo")
def test_happy_path_against_drongo() -> None:
    provisioner = CloudRunProvisioner(POOL, CONFIG)
    request = request_for()
    ref = provisioner.submit(request)
    assert provisioner.submit(request) == ref  # drongo's 409, adopted
    assert provisioner.find(request) == ref
    assert provisioner.status(ref).state == InfraState.PENDING
    ran: list[str] = []
    run_execution(ref.id, lambda: ran.append("flow"))
    assert ran == ["flow"]
    status = provisioner.status(ref)
    assert (status.state, status.exit_code) == (InfraState.EXITED, 0)
    assert provisioner.status_many([ref]) == {ref.id: status}
    assert provisioner.list_orphans({request.run_id}) == []
    assert provisioner.list_orphans(set()) == [ref]
    provisioner.teardown(ref)
    provisioner.teardown(ref)
    assert provisioner.status(ref).state == InfraState.MISSING
    assert provisioner.list_orphans(set()) == []


@pytest.mark.usefixtures("drongo")
def test_a_failing_run_against_drongo() -> None:
    provisioner = CloudRunProvisioner(POOL, CONFIG)
    ref = provisioner.submit(request_for())

    def crash() -> None:
        raise RuntimeError("flow crashed")

    run_execution(ref.id, crash)
    status = provisioner.status(ref)
    assert status.state == InfraState.EXITED
    assert status.exit_code is None  # drongo has no tasks: the exit code is unknown
    assert status.reason is not None and "flow crashed" in status.reason
    for orphan in provisioner.list_orphans(set()):
        provisioner.teardown(orphan)
    assert provisioner.list_orphans(set()) == []
