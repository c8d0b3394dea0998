"""What an execution and its task mean for a run, from Cloud Run's own resource shapes."""

from __future__ import annotations

from typing import Any

from provisioners.base import InfraState
from provisioners.cloud_run.status import execution_status, first_execution, needs_task


def execution(**fields: Any) -> dict[str, Any]:
    return {"name": "projects/p/locations/l/jobs/j/executions/j-x1", "task_count": 1, **fields}


def task(exit_code: int = 0, term_signal: int = 0, message: str = "") -> dict[str, Any]:
    result: dict[str, Any] = {"exit_code": exit_code, "term_signal": term_signal}
    if message:
        result["status"] = {"code": 2, "message": message}
    return {"last_attempt_result": result}


def test_pending_and_running() -> None:
    assert execution_status(execution()).state == InfraState.PENDING
    assert execution_status(execution(running_count=1)).state == InfraState.RUNNING
    assert execution_status(execution(start_time="2026-01-01T00:00:00Z")).state == (
        InfraState.RUNNING
    )


def test_succeeded_is_exit_code_zero_without_reading_the_task() -> None:
    done = execution(succeeded_count=1, completion_time="t")
    assert not needs_task(done)
    status = execution_status(done)
    assert (status.state, status.exit_code) == (InfraState.EXITED, 0)


def test_failed_takes_the_tasks_exit_code_and_both_reasons() -> None:
    failed = execution(
        failed_count=1,
        completion_time="t",
        conditions=[{"type_": "Completed", "state": "CONDITION_FAILED", "message": "OOM"}],
    )
    assert needs_task(failed)
    status = execution_status(failed, task(137, message="Container killed"))
    assert (status.state, status.exit_code) == (InfraState.EXITED, 137)
    assert status.reason == "Cloud Run: OOM; task: Container killed"


def test_a_signal_without_an_exit_code_is_128_plus_the_signal() -> None:
    failed = execution(failed_count=1, completion_time="t")
    assert execution_status(failed, task(0, term_signal=9)).exit_code == 137


def test_a_task_that_never_ran_has_no_exit_code() -> None:
    failed = execution(failed_count=1, completion_time="t")
    status = execution_status(failed, {"name": "t"})
    assert status.exit_code is None and status.reason == "Cloud Run execution failed"


def test_cancelled_is_finished_with_cloud_runs_reason() -> None:
    cancelled = execution(
        cancelled_count=1,
        conditions=[{"type_": "Completed", "execution_reason": "CANCELLED"}],
    )
    status = execution_status(cancelled)
    assert status.state == InfraState.EXITED
    assert status.reason == "Cloud Run execution cancelled; Cloud Run: CANCELLED"


def test_the_execution_submit_started_is_the_oldest() -> None:
    first = execution(name="a", create_time="2026-01-01T00:00:01Z")
    again = execution(name="b", create_time="2026-01-01T00:00:02Z")
    assert first_execution([again, first]) is first
    assert first_execution([]) is None
