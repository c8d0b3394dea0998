"""When no final report comes, the infrastructure's evidence decides: exit codes mapped to
states (a completed flow is never run again), a grace for reports in flight, the process
pool's outcome record, and the platform's last words kept with the run's logs."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from support.clock import FakeClock
from support.factories import deployment_body

from provisioners.base import InfraState, InfraStatus
from service.deployments import DeploymentCreate, deploy
from service.models import FlowRun
from service.reconcile import judge_exit
from service.runs import RunCreate, create_run
from service.services import Services
from service.states import StateType, set_state

S = StateType


def exited(code: int | None, reason: str = "process exited") -> InfraStatus:
    return InfraStatus(InfraState.EXITED, exit_code=code, reason=reason)


@pytest.mark.parametrize(
    ("state", "code", "expected"),
    [
        (S.RUNNING, 0, S.COMPLETED),
        (S.RUNNING, 1, S.FAILED),
        (S.RUNNING, 3, S.CRASHED),  # runner fault
        (S.RUNNING, 137, S.CRASHED),  # killed
        (S.RUNNING, None, S.CRASHED),  # no evidence
        (S.PENDING, 0, S.CRASHED),  # never reported RUNNING: the flow cannot have run
        (S.PENDING, 1, S.CRASHED),
        (S.CANCELLING, 0, S.CANCELLED),
        (S.CANCELLING, 143, S.CANCELLED),
    ],
)
def test_exit_codes_map_to_states(state: StateType, code: int | None, expected: StateType) -> None:
    assert judge_exit(state, exited(code)).state == expected


def test_exit_zero_says_the_result_was_not_delivered() -> None:
    verdict = judge_exit(S.RUNNING, exited(0))
    assert "not delivered" in verdict.message and verdict.error is None
    failed = judge_exit(S.RUNNING, exited(1))
    assert failed.error is not None and failed.error["exit_code"] == 1


def _run_command(services: Services, code: str, retries: int = 0) -> FlowRun:
    """A run whose "flow" is ``python -c code`` (standing in for a runner), now RUNNING."""
    config = services.store.get_pool("local").config | {"allow_job_commands": True}
    services.store.update_pool("local", {"config": config}, services.clock())
    body = deployment_body(job_variables={"command": [sys.executable, "-c", code]}, retries=retries)
    dep = deploy(services, DeploymentCreate.model_validate(body))[0]
    run, _ = create_run(services, dep.id, RunCreate())
    return set_state(services.store, run.id, S.RUNNING, now=services.clock())


def _wait_exited(services: Services, run: FlowRun) -> None:
    assert run.infra is not None
    provisioner = services.dispatcher.provisioner(run.work_pool)
    deadline = time.monotonic() + 20
    while not provisioner.status(run.infra).finished:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_completed_flow_without_its_report_is_completed_and_never_retried(
    services: Services, clock: FakeClock
) -> None:
    run = _run_command(services, "print('done', flush=True)", retries=3)
    _wait_exited(services, run)
    services.scheduler.tick(clock())
    assert services.store.get_run(run.id).state.type == S.RUNNING  # the grace
    clock.advance(services.settings.report_grace_seconds + 1)
    report = services.scheduler.tick(clock())
    assert report.reconcile.completed == 1
    done = services.store.get_run(run.id)
    assert done.state.type == S.COMPLETED and done.run_count == 1
    assert "not delivered" in (done.state.message or "")


def test_a_report_in_the_grace_period_wins(services: Services, clock: FakeClock) -> None:
    run = _run_command(services, "raise SystemExit(137)")
    _wait_exited(services, run)
    services.scheduler.tick(clock())  # seen exited: the grace starts
    set_state(services.store, run.id, S.COMPLETED, now=clock(), fields={"result": 1})
    clock.advance(services.settings.report_grace_seconds + 1)
    services.scheduler.tick(clock())
    assert services.store.get_run(run.id).state.type == S.COMPLETED


def test_last_words_of_a_crash_come_from_the_platform_log(
    services: Services, clock: FakeClock
) -> None:
    code = "import os; print('about to die', flush=True); os._exit(7)"
    run = _run_command(services, code)
    _wait_exited(services, run)
    services.settings.report_grace_seconds = 0
    services.scheduler.tick(clock())
    crashed = services.store.get_run(run.id)
    assert crashed.state.type == S.CRASHED
    lines = services.store.read_logs(run.id)
    assert lines[0].stream == "platform" and "process platform log" in lines[0].message
    assert [x.message for x in lines[1:]] == ["about to die"]
    assert crashed.infra is not None and not Path(crashed.infra.data["dir"]).exists()


def test_the_outcome_record_gives_the_exit_code_of_a_process_we_did_not_start(
    services: Services, clock: FakeClock
) -> None:
    """After a server restart there is no child to ask: the runner's record says it."""
    run = _run_command(services, "pass")
    _wait_exited(services, run)
    assert run.infra is not None
    record = Path(run.infra.data["dir"]) / "outcome.json"
    record.write_text(json.dumps({"state": "FAILED", "exit_code": 1, "reported": False}))
    from provisioners import process

    process._children.pop(int(run.infra.data["pid"]))  # as after a restart
    status = services.dispatcher.provisioner("local").status(run.infra)
    assert status.exit_code == 1
    services.settings.report_grace_seconds = 0
    services.scheduler.tick(clock())
    assert services.store.get_run(run.id).state.type == S.FAILED
