"""What a Cloud Run execution (and its task) means for a run: state, exit code, reason."""

from __future__ import annotations

from typing import Any

from provisioners.base import InfraState, InfraStatus

Resource = dict[str, Any]


def finished(execution: Resource) -> bool:
    return bool(execution.get("completion_time")) or _count(execution, "cancelled_count") > 0


def _count(execution: Resource, key: str) -> int:
    return int(execution.get(key) or 0)


def _completed_condition(execution: Resource) -> Resource:
    return next(
        (
            c
            for c in execution.get("conditions", [])
            # proto-plus names the field ``type_``; plain JSON ``type``
            if c.get("type_", c.get("type")) == "Completed"
        ),
        {},
    )


def job_failure(job: Resource) -> str | None:
    """Why Cloud Run could not start the job's execution, if it failed to."""
    condition = job.get("terminal_condition") or {}
    if condition.get("state") != "CONDITION_FAILED":
        return None
    why = condition.get("message") or condition.get("reason") or "the job failed"
    return f"Cloud Run could not start the job: {why}"


def reason(execution: Resource, task: Resource | None) -> str:
    """Cloud Run's own words on how the execution ended, for humans."""
    parts = []
    if _count(execution, "cancelled_count"):
        parts.append("Cloud Run execution cancelled")
    condition = _completed_condition(execution)
    if condition.get("message"):
        parts.append(f"Cloud Run: {condition['message']}")
    elif condition.get("execution_reason") not in (None, "", "EXECUTION_REASON_UNDEFINED"):
        parts.append(f"Cloud Run: {condition['execution_reason']}")
    result = (task or {}).get("last_attempt_result") or {}
    status_message = (result.get("status") or {}).get("message")
    if status_message:
        parts.append(f"task: {status_message}")
    if not parts:
        state = "succeeded" if _count(execution, "succeeded_count") else "failed"
        parts.append(f"Cloud Run execution {state}")
    return "; ".join(parts)


def needs_task(execution: Resource) -> bool:
    """Whether the exit code must be read from the task (a failure or cancellation)."""
    return finished(execution) and not _count(execution, "succeeded_count")


def exit_code(execution: Resource, task: Resource | None) -> int | None:
    if _count(execution, "succeeded_count") and not _count(execution, "failed_count"):
        return 0
    result = (task or {}).get("last_attempt_result")
    if not result:
        return None  # the task never ran (or the platform did not say)
    code, signal = int(result.get("exit_code") or 0), int(result.get("term_signal") or 0)
    return 128 + signal if signal and not code else code


def execution_status(execution: Resource, task: Resource | None = None) -> InfraStatus:
    if not finished(execution):
        running = _count(execution, "running_count") > 0 or bool(execution.get("start_time"))
        return InfraStatus(InfraState.RUNNING if running else InfraState.PENDING)
    return InfraStatus(
        InfraState.EXITED, exit_code=exit_code(execution, task), reason=reason(execution, task)
    )


def first_execution(executions: list[Resource]) -> Resource | None:
    """The execution ``submit`` started (a job of ours has one; the oldest, if more)."""
    if not executions:
        return None
    return min(executions, key=lambda e: (str(e.get("create_time") or ""), e.get("name", "")))
