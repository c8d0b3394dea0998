"""Flow-run operations: create (and push at once when due), cancel, runner reports."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator
from starlette.concurrency import run_in_threadpool

from service.models import BoundedDict, BoundedJson, FlowRun, LogLine, StateRecord, Strict
from service.services import Services
from service.states import StateType, is_terminal, set_state
from service.validation import check_parameters


class RunCreate(Strict):
    parameters: BoundedDict | None = None
    scheduled_start: datetime | None = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    tags: list[str] | None = Field(default=None, max_length=50)

    @field_validator("scheduled_start")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("must include a timezone offset, e.g. 2026-01-01T09:00:00Z")
        return v


async def create_and_push(
    svc: Services, deployment_id: str, body: RunCreate
) -> tuple[FlowRun, bool]:
    """:func:`create_run` for the event loop: the store work runs inline (it is fast and
    local), only the provider call goes to a worker thread."""
    run, created = create_run(svc, deployment_id, body, push=False)
    if created and run.expected_start <= svc.clock():
        claims = svc.dispatcher.claim(1, run_ids=[run.id])
        if claims:
            await run_in_threadpool(svc.dispatcher.submit_claimed, claims)
            run = svc.store.get_run(run.id)
    return run, created


def create_run(
    svc: Services, deployment_id: str, body: RunCreate, *, push: bool = True
) -> tuple[FlowRun, bool]:
    """Create an ad-hoc run; with ``push``, a run due now is pushed before this returns."""
    deployment = svc.store.get_deployment(deployment_id)
    parameters = {**deployment.parameters, **(body.parameters or {})}
    check_parameters(deployment.parameter_schema, parameters)
    now = svc.clock()
    run = FlowRun(
        id=str(uuid.uuid4()),
        deployment_id=deployment.id,
        flow_name=deployment.flow_name,
        deployment_name=deployment.name,
        work_pool=deployment.work_pool,
        state=StateRecord(type=StateType.SCHEDULED, name="Scheduled", timestamp=now),
        parameters=parameters,
        idempotency_key=body.idempotency_key,
        expected_start=body.scheduled_start or now,
        tags=body.tags if body.tags is not None else list(deployment.tags),
        created_at=now,
        updated_at=now,
    )
    run, created = svc.store.create_run(run)
    due = push and created and run.expected_start <= now
    if due and svc.dispatcher.dispatch_due(1, run_ids=[run.id]):
        run = svc.store.get_run(run.id)
    return run, created


def cancel_run(svc: Services, run_id: str) -> FlowRun:
    """Cancel: at once if nothing runs yet, else ``CANCELLING`` and stop the infrastructure."""
    now = svc.clock()
    run = svc.store.get_run(run_id)
    state = run.state.type
    if state == StateType.CANCELLING:
        return run
    if state == StateType.SCHEDULED or (state == StateType.PENDING and run.infra is None):
        return set_state(
            svc.store,
            run_id,
            StateType.CANCELLED,
            now=now,
            message="cancelled by user",
            expected=state,
        )
    run = set_state(
        svc.store,
        run_id,
        StateType.CANCELLING,
        now=now,
        message="cancel requested",
        expected=state,
    )
    if run.infra is not None:
        provisioner = svc.dispatcher.provisioner(run.work_pool)
        provisioner.cancel(run.infra, svc.settings.cancel_grace_seconds)
    return run


# -- what the runner reports -----------------------------------------------------------
class RunnerError(Strict):
    type: str = Field(max_length=500)
    message: str = Field(max_length=20_000)
    traceback: str | None = Field(default=None, max_length=200_000)


class StateReport(Strict):
    state: Literal["RUNNING", "COMPLETED", "FAILED", "CANCELLED"]
    message: str | None = Field(default=None, max_length=20_000)
    result: BoundedJson = None
    error: RunnerError | None = None


class LogIn(Strict):
    timestamp: datetime
    level: str = Field(default="INFO", max_length=20)
    message: str
    stream: Literal["stdout", "stderr", "logging"] = "stdout"
    logger: str | None = Field(default=None, max_length=200)

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("must include a timezone offset")
        return v

    @field_validator("message")
    @classmethod
    def _truncate(cls, v: str) -> str:
        return v if len(v) <= 65_536 else v[:65_536] + "…[truncated]"


class LogBatch(Strict):
    logs: list[LogIn] = Field(max_length=1000)


def report_state(svc: Services, run: FlowRun, report: StateReport) -> FlowRun:
    target = StateType(report.state)
    fields: dict[str, Any] = {}
    if target == StateType.COMPLETED:
        fields["result"] = report.result
    if report.error is not None:
        fields["error"] = report.error.model_dump()
    message = report.message
    if message is None and report.error is not None:
        message = f"{report.error.type}: {report.error.message}"[:2000]
    return set_state(svc.store, run.id, target, now=svc.clock(), message=message, fields=fields)


def append_logs(svc: Services, run: FlowRun, batch: LogBatch) -> None:
    svc.store.append_logs(
        run.id,
        [LogLine(run_id=run.id, **line.model_dump()) for line in batch.logs],
    )


def heartbeat(svc: Services, run: FlowRun) -> FlowRun:
    svc.store.record_heartbeat(run.id, svc.clock())
    return run


def runner_may_act(run: FlowRun) -> bool:
    """A run token works only while its attempt is live."""
    return not is_terminal(run.state.type) and run.state.type != StateType.SCHEDULED
