"""Flow-run operations: create (and push at once when due), cancel, runner reports."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator
from starlette.concurrency import run_in_threadpool

from service import events
from service.errors import Conflict, InvalidInput
from service.models import (
    BoundedDict,
    BoundedJson,
    FlowRun,
    LogLine,
    RunName,
    StateRecord,
    Strict,
)
from service.security import hash_secret, is_run_token, matches, redact_secrets
from service.services import Services
from service.states import StateType, is_terminal, set_state
from service.store.base import LogLimits
from service.validation import check_parameters


class RunCreate(Strict):
    name: RunName | None = Field(default=None, description="Default: one chosen from the id")
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
        **({"name": body.name} if body.name else {}),
    )
    run, created = svc.store.create_run(run)
    if not created and run.parameters != parameters:
        raise Conflict(
            f"idempotency key {body.idempotency_key!r} was already used for run {run.id} "
            "with different parameters; use a new key to start another run"
        )
    if created:
        events.append(svc.store, [events.run_state_event(run)])
    if created and run.expected_start > now:
        svc.wake()
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
    task_run_id: str | None = Field(
        default=None, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$", description="Its task run"
    )

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
    #: The batch's number in this attempt (from 0): a resent batch is stored once.
    seq: int | None = Field(default=None, ge=0, le=2**31 - 1)
    logs: list[LogIn] = Field(max_length=1000)


class TokenExchange(Strict):
    """The run token the runner made for itself, given for the bootstrap credential."""

    token: str = Field(min_length=1, max_length=200)


def exchange_token(svc: Services, run: FlowRun, bootstrap: str, body: TokenExchange) -> bool:
    """Replace the run's bootstrap credential (already checked by the caller against
    ``run.token_hash``, or spent) with the runner's own token; only hashes are stored.

    ``True`` if the exchange happened now, or had happened with this very token (the
    runner retrying after a lost answer); ``False`` if the credential was spent on
    another token, so a second exchange gets nothing.
    """
    if not is_run_token(body.token):
        raise InvalidInput("token", "must be 'ppr_' followed by 43 URL-safe characters")
    if matches(body.token, run.token_hash):
        return True
    if run.token_hash is None or not matches(bootstrap, run.token_hash):
        return False
    return svc.store.replace_token(run.id, run.token_hash, hash_secret(body.token))


def report_state(svc: Services, run: FlowRun, report: StateReport) -> FlowRun:
    """Apply the runner's report. ``RUNNING`` again (the runner retrying after a lost
    answer: the token is this attempt's) changes nothing and succeeds."""
    target = StateType(report.state)
    if target == StateType.RUNNING and run.state.type == StateType.RUNNING:
        return run
    fields: dict[str, Any] = {}
    if target == StateType.COMPLETED:
        fields["result"] = report.result
    if report.error is not None:
        fields["error"] = {k: _redact(v) for k, v in report.error.model_dump().items()}
    message = report.message
    if message is None and report.error is not None:
        message = f"{report.error.type}: {report.error.message}"[:2000]
    message = None if message is None else redact_secrets(message)
    updated = set_state(svc.store, run.id, target, now=svc.clock(), message=message, fields=fields)
    if updated.state.type == StateType.SCHEDULED:
        svc.wake()  # a retry: the server loop wakes for it, not on its next poll
    return updated


def _redact(value: Any) -> Any:
    return redact_secrets(value) if isinstance(value, str) else value


def log_limits(svc: Services) -> LogLimits:
    s = svc.settings
    return LogLimits(max_lines=s.log_max_lines_per_run, max_bytes=s.log_max_bytes_per_run)


def append_logs(svc: Services, run: FlowRun, batch: LogBatch) -> bool:
    """Store the batch (once per ``(attempt, seq)``), secrets redacted, within the run's
    caps; ``False`` if this batch was stored before."""
    lines = [
        LogLine(run_id=run.id, **(line.model_dump() | {"message": redact_secrets(line.message)}))
        for line in batch.logs
    ]
    key = None if batch.seq is None else (run.run_count, batch.seq)
    return svc.store.append_logs(run.id, lines, batch=key, limits=log_limits(svc))


def heartbeat(svc: Services, run: FlowRun) -> FlowRun:
    svc.store.record_heartbeat(run.id, svc.clock())
    return run


def runner_may_act(run: FlowRun) -> bool:
    """A run token works only while its attempt is live."""
    return not is_terminal(run.state.type) and run.state.type != StateType.SCHEDULED
