"""Watching, stopping and cleaning up: states and exit codes from the execution and its
task, a status pass in a handful of calls, cancel that reaches the execution, teardown
and the sweep that leave no job behind, the platform's own log as last words."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from emulators.gcp import GcpEmulator
from support.cloud_run import PROJECT, REGION, request_for

from provisioners.base import InfraRef, InfraState
from provisioners.cloud_run import CloudRunProvisioner
from provisioners.errors import ProvisionerError

EXECUTIONS_OF_ALL = rf"/locations/{REGION}/jobs/-/executions$"


def submitted(provisioner: CloudRunProvisioner, n: int = 1) -> list[InfraRef]:
    return [provisioner.submit(request_for()) for _ in range(n)]


def test_pending_running_succeeded(emulator: GcpEmulator, provisioner: CloudRunProvisioner) -> None:
    [ref] = submitted(provisioner)
    assert provisioner.status(ref).state == InfraState.PENDING
    emulator.run.start(ref.id)
    assert provisioner.status(ref).state == InfraState.RUNNING
    emulator.run.finish(ref.id, 0)
    status = provisioner.status(ref)
    assert (status.state, status.exit_code) == (InfraState.EXITED, 0)


def test_a_killed_task_reports_its_exit_code_and_cloud_runs_reason(
    emulator: GcpEmulator, provisioner: CloudRunProvisioner
) -> None:
    [ref] = submitted(provisioner)
    emulator.run.start(ref.id)
    emulator.run.finish(ref.id, 137, "Container terminated: memory limit exceeded")
    status = provisioner.status(ref)
    assert (status.state, status.exit_code) == (InfraState.EXITED, 137)
    assert status.reason is not None and "memory limit exceeded" in status.reason


def test_a_job_that_is_gone_is_missing(
    emulator: GcpEmulator, provisioner: CloudRunProvisioner
) -> None:
    [ref] = submitted(provisioner)
    del emulator.run.jobs[ref.id]
    assert provisioner.status(ref).state == InfraState.MISSING


def test_a_status_pass_over_a_thousand_runs_costs_a_handful_of_calls(
    emulator: GcpEmulator, provisioner: CloudRunProvisioner
) -> None:
    refs = submitted(provisioner, 1000)
    for ref in refs[:500]:
        emulator.run.start(ref.id)
    for ref in refs[500:505]:
        emulator.run.finish(ref.id, 3)
    before = emulator.journal.count()
    statuses = provisioner.status_many(refs)
    calls = emulator.journal.count() - before
    assert calls <= 20, calls
    assert emulator.journal.count("GET", EXECUTIONS_OF_ALL) == 2  # two pages of 500
    assert len(statuses) == len(refs)
    sample = [*refs[::100], *refs[500:505], refs[999]]
    assert {r.id: statuses[r.id] for r in sample} == {r.id: provisioner.status(r) for r in sample}
    assert statuses[refs[0].id].state == InfraState.RUNNING
    assert statuses[refs[500].id].exit_code == 3
    assert statuses[refs[999].id].state == InfraState.PENDING


def test_status_many_leaves_out_what_it_could_not_read(
    emulator: GcpEmulator, provisioner: CloudRunProvisioner
) -> None:
    refs = submitted(provisioner, 2)
    emulator.fail("GET", EXECUTIONS_OF_ALL, 503, "unavailable")
    assert provisioner.status_many(refs) == {}  # asked again on the next pass
    assert set(provisioner.status_many(refs)) == {r.id for r in refs}


def test_cancel_reaches_the_execution_and_is_idempotent(
    emulator: GcpEmulator, provisioner: CloudRunProvisioner
) -> None:
    [ref] = submitted(provisioner)
    emulator.run.start(ref.id)
    provisioner.cancel(ref, grace_seconds=5)
    provisioner.cancel(ref, grace_seconds=5)
    assert emulator.journal.count("POST", r":cancel$") == 1
    status = provisioner.status(ref)
    assert status.state == InfraState.EXITED
    assert status.reason is not None and "cancelled" in status.reason
    provisioner.teardown(ref)
    assert emulator.run.jobs == {}


def test_cancel_of_a_finished_execution_is_a_no_op(
    emulator: GcpEmulator, provisioner: CloudRunProvisioner
) -> None:
    [ref] = submitted(provisioner)
    emulator.run.start(ref.id)
    emulator.fail("POST", r":cancel$", 400, "Execution already completed")  # a race lost
    provisioner.cancel(ref, grace_seconds=5)
    emulator.run.finish(ref.id, 0)
    provisioner.cancel(ref, grace_seconds=5)
    assert emulator.journal.count("POST", r":cancel$") == 1


def test_teardown_cancels_a_running_execution_then_deletes_the_job(
    emulator: GcpEmulator, provisioner: CloudRunProvisioner
) -> None:
    [ref] = submitted(provisioner)
    emulator.run.start(ref.id)
    provisioner.teardown(ref)
    methods = [(r.method, r.path.rsplit("/", 1)[-1]) for r in emulator.journal.requests[-3:]]
    assert methods[1][0] == "POST" and methods[1][1].endswith(":cancel")
    assert methods[2] == ("DELETE", ref.data["job"])
    assert emulator.run.jobs == {} and emulator.run.executions == {}
    provisioner.teardown(ref)  # gone: fine


def test_teardown_that_cloud_run_refuses_for_now_is_retried_later(
    emulator: GcpEmulator, provisioner: CloudRunProvisioner
) -> None:
    [ref] = submitted(provisioner)
    emulator.fail("DELETE", r"/jobs/", 409, "Job has running executions")
    with pytest.raises(ProvisionerError) as info:
        provisioner.teardown(ref)
    assert info.value.transient
    provisioner.teardown(ref)
    assert emulator.run.jobs == {}


def test_the_sweep_finds_this_pools_jobs_of_runs_that_are_over(
    emulator: GcpEmulator, make_provisioner: Callable[..., CloudRunProvisioner]
) -> None:
    mine, other = make_provisioner(), make_provisioner("Other Pool!")
    live, over = request_for(), request_for("run/with Odd chars")
    mine.submit(live)
    ended = mine.submit(over)
    other.submit(request_for())
    orphans = mine.list_orphans({live.run_id})
    assert [(o.id, o.data["run_id"], o.data["attempt"]) for o in orphans] == [
        (ended.id, over.run_id, 1)
    ]
    for orphan in orphans:
        mine.teardown(orphan)
    assert mine.list_orphans(set()) == [mine.find(live)]
    assert len(other.list_orphans(set())) == 1


def test_log_tail_is_cloud_loggings_capture_of_the_job(
    emulator: GcpEmulator, provisioner: CloudRunProvisioner
) -> None:
    [ref, other] = submitted(provisioner, 2)
    emulator.logging.write(PROJECT, ref.data["job"], *[f"line {i}" for i in range(5)])
    emulator.logging.write(PROJECT, other.data["job"], "not this one")
    assert provisioner.log_tail(ref, max_lines=3) == ["line 2", "line 3", "line 4"]
    assert provisioner.log_tail(other) == ["not this one"]
    emulator.fail("POST", r"/v2/entries:list$", 403, "Permission 'logging.logEntries.list'")
    assert provisioner.log_tail(ref) == []
    emulator.fail("POST", r"/v2/entries:list$", 503, "unavailable")
    with pytest.raises(ProvisionerError):
        provisioner.log_tail(ref)


def test_links_point_at_the_job_and_its_logs(
    emulator: GcpEmulator, provisioner: CloudRunProvisioner
) -> None:
    ref = provisioner.submit(request_for())
    found = provisioner.infra_links(ref)
    assert found["execution_logs"] == emulator.run.execution_of(ref.id)["logUri"]
    job = ref.data["job"]
    assert found["job"] == (
        f"https://console.cloud.google.com/run/jobs/details/{REGION}/{job}/executions"
        f"?project={PROJECT}"
    )
    assert job in found["logs"] and "cloud_run_job" in found["logs"]
    emulator.fail("GET", r"/executions$", 503, "unavailable")
    assert set(provisioner.infra_links(ref)) == {"job", "logs"}  # a detail view never fails
    provisioner.teardown(ref)
    assert set(provisioner.infra_links(ref)) == {"job", "logs"}


def test_the_emulator_refuses_a_misspelt_field(emulator: GcpEmulator) -> None:
    """The emulator parses bodies with the library's types: a wrong field is a 400."""
    import httpx

    url = f"{emulator.url}/v2/projects/{PROJECT}/locations/{REGION}/jobs?jobId=pp-x"
    r = httpx.post(url, json={"template": {"taskCount": 1, "parallelizm": 1}})
    assert r.status_code == 400 and "parallelizm" in r.text
    assert emulator.run.jobs == {}


def test_a_job_cloud_run_could_not_start_is_finished_with_its_reason(
    emulator: GcpEmulator, provisioner: CloudRunProvisioner
) -> None:
    [ref] = submitted(provisioner)
    emulator.run.executions.clear()  # Cloud Run made no execution: the image is missing
    assert provisioner.status(ref).state == InfraState.PENDING  # still starting
    emulator.run.jobs[ref.id]["terminalCondition"] = {
        "type": "Ready",
        "state": "CONDITION_FAILED",
        "message": "Image 'runner:test' not found.",
    }
    status = provisioner.status(ref)
    assert (status.state, status.exit_code) == (InfraState.EXITED, None)
    assert status.reason == "Cloud Run could not start the job: Image 'runner:test' not found."
    assert provisioner.status_many([ref]) == {ref.id: status}
