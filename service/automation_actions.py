"""Working the automations' outbox: each queued action job is tried by the tick, retried
with exponential backoff, and its outcome recorded as an event.

:func:`work` claims each due job (a conditional write: of several ticks, one tries it),
which also sets when it is due again should this try fail or its process die. A success
deletes the job and records ``pushpool.automation.action.succeeded``; a failure waits
for the retry, and after ``automation_action_attempts`` tries the job is deleted and
``pushpool.automation.action.failed`` recorded with the reason. An action never raises
out of the tick. A ``run-deployment`` job's run carries the idempotency key
``automation-<job id>``, so a retry after a lost answer starts no second run.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from service import events
from service.automation_records import (
    Action,
    ActionJob,
    CancelFlowRun,
    Email,
    Notify,
    PauseDeployment,
    PauseSchedules,
    PauseWorkPool,
    RunDeployment,
)
from service.automations import AUTOMATION, automation_resource, render, render_values
from service.automations import template_context as _context
from service.errors import InvalidInput, PushpoolError
from service.event_records import new_event

if TYPE_CHECKING:
    from service.models import Deployment
    from service.services import Services

log = logging.getLogger("pushpool.automations")
_action = TypeAdapter[Action](Action)


def backoff(settings: Any, attempt: int) -> timedelta:
    """How long after try number ``attempt`` (1-based) the next one is due."""
    return timedelta(seconds=settings.automation_retry_seconds * 2 ** (attempt - 1))


def work(svc: Services, now: datetime, limit: int = 100) -> int:
    """Try every due job (up to ``limit``); returns how many were tried here."""
    tried = 0
    for job in svc.store.due_action_jobs(now, limit):
        attempt = job.attempts + 1
        if not svc.store.claim_action_job(job, now + backoff(svc.settings, attempt)):
            continue  # another tick has it
        tried += 1
        try:
            detail = perform(svc, job)
        except Exception as exc:  # any failure is the action's, never the tick's
            reason = describe(exc)
            log.warning("automation %s action %d failed: %s", job.automation, job.index, reason)
            if attempt >= svc.settings.automation_action_attempts:
                svc.store.delete_action_job(job.id)
                _outcome(svc, job, now, "failed", {"error": reason, "attempts": attempt})
            continue
        svc.store.delete_action_job(job.id)
        _outcome(svc, job, now, "succeeded", {"attempts": attempt, **detail})
    return tried


def describe(exc: Exception) -> str:
    """A one-line reason that names no secret (our errors' messages are safe; others
    give their type, and a refused or failed POST never its URL)."""
    from service.notify import Refused

    if isinstance(exc, PushpoolError | Refused | RuntimeError):
        return str(exc)[:500]
    return type(exc).__name__


def _outcome(
    svc: Services, job: ActionJob, now: datetime, outcome: str, payload: dict[str, Any]
) -> None:
    action = job.action.get("type", "")
    event = new_event(
        f"{AUTOMATION}.action.{outcome}",
        automation_resource(job.automation),
        occurred=now,
        related=[job.event.resource],
        payload={"firing": job.firing, "action": action, "index": job.index, **payload},
    )
    events.append(svc.store, [event])


def perform(svc: Services, job: ActionJob) -> dict[str, Any]:
    """Do one job's action; returns what the success event records."""
    action = _action.validate_python(job.action)
    context = _context(job.automation, job.event)
    if isinstance(action, RunDeployment):
        return _run_deployment(svc, job, action, context)
    if isinstance(action, PauseDeployment):
        return _pause(svc, action)
    if isinstance(action, PauseSchedules):
        return _pause_schedules(svc, action)
    if isinstance(action, PauseWorkPool):
        return _pause_pool(svc, action)
    if isinstance(action, CancelFlowRun):
        return _cancel(svc, job, action, context)
    if isinstance(action, Email):
        return _email(svc, action, context)
    return _notify(svc, action, context)


def deployment(svc: Services, ref: str) -> Deployment:
    """A deployment by id or by ``flow/name``."""
    if "/" in ref:
        flow, name = ref.split("/", 1)
        return svc.store.find_deployment(flow, name)
    return svc.store.get_deployment(ref)


def _run_deployment(
    svc: Services, job: ActionJob, action: RunDeployment, context: dict[str, Any]
) -> dict[str, Any]:
    from service.runs import RunCreate, create_run

    dep = deployment(svc, action.deployment)
    parameters = render_values(action.parameters, context)
    body = RunCreate(parameters=parameters, idempotency_key=f"automation-{job.id}")
    run, _ = create_run(svc, dep.id, body)
    return {"flow_run": run.id, "flow_run_name": run.name}


def _pause(svc: Services, action: PauseDeployment) -> dict[str, Any]:
    from service.deployments import DeploymentUpdate, update

    dep = deployment(svc, action.deployment)
    paused = action.type == "pause-deployment"
    update(svc, dep.id, DeploymentUpdate(paused=paused))
    return {"deployment": dep.id}


def _pause_schedules(svc: Services, action: PauseSchedules) -> dict[str, Any]:
    """Every schedule of the deployment set (in)active, through the same update as
    ``PATCH /api/deployments/{id}`` (a deactivated schedule's future runs go)."""
    from service.deployments import DeploymentUpdate, update

    dep = deployment(svc, action.deployment)
    active = action.type == "resume-schedules"
    schedules = [s.model_copy(update={"active": active}) for s in dep.schedules]
    update(svc, dep.id, DeploymentUpdate(schedules=schedules))
    return {"deployment": dep.id, "schedules": len(schedules)}


def _pause_pool(svc: Services, action: PauseWorkPool) -> dict[str, Any]:
    """The pool paused or resumed, as ``PATCH /api/work-pools/{name}`` does."""
    from service.pools import WorkPoolUpdate, update_pool

    paused = action.type == "pause-work-pool"
    update_pool(svc, action.work_pool, WorkPoolUpdate(paused=paused))
    return {"work_pool": action.work_pool}


def _email(svc: Services, action: Email, context: dict[str, Any]) -> dict[str, Any]:
    """Render the mail, read the SMTP block (its password decrypted here only) and send."""
    from service import mail
    from service.blocks.models import split_ref
    from service.blocks.ops import read_values

    msg_subject = render(action.subject, context)
    msg_body = render(action.body, context)
    server = mail.Server.of(read_values(svc, *split_ref(action.smtp)))
    sender = server.sender() or ""
    msg = mail.message(sender, action.to, msg_subject, msg_body)
    mail.send(server, msg, svc.settings)
    return {"to": list(action.to), "smtp": action.smtp}


def _cancel(
    svc: Services, job: ActionJob, action: CancelFlowRun, context: dict[str, Any]
) -> dict[str, Any]:
    from service.runs import cancel_run

    prefix = f"{events.FLOW_RUN}."
    if action.flow_run is not None:
        run_id = render(action.flow_run, context).strip()
    elif job.event.resource.id.startswith(prefix):
        run_id = job.event.resource.id[len(prefix) :]
    else:
        raise InvalidInput("flow_run", "the triggering event is not about a flow run")
    run = cancel_run(svc, run_id)
    return {"flow_run": run.id, "state": run.state.name}


def _notify(svc: Services, action: Notify, context: dict[str, Any]) -> dict[str, Any]:
    from service.notify import post

    body = render(action.body, context)
    return {"status": post(action.url, body, action.content_type, svc.settings)}
