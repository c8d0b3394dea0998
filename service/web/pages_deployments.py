"""Deployments: the list, a deployment's page (schedules with their next fire times,
recent runs with a sparkline, the Run form), running, pausing and resuming."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from service import deployments, runs
from service.api.deps import ServicesDep
from service.errors import InvalidInput
from service.models import ApiKey, Deployment, FlowRun
from service.schedules import CronSchedule, Schedule, fire_times
from service.security import require_pool
from service.services import Services
from service.store.base import RunFilter
from service.web import forms
from service.web.common import WebRoute
from service.web.render import page
from service.web.session import DeployerPost, PageKey, read_form

router = APIRouter(route_class=WebRoute)
RECENT = 20
NEXT_FIRES = 10


@dataclass(frozen=True)
class ScheduleView:
    label: str
    zone: str
    active: bool
    next_fires: list[datetime]


def schedule_view(schedule: Schedule, now: datetime) -> ScheduleView:
    """The schedule in words and its next ten fire times in its own time zone."""
    if isinstance(schedule, CronSchedule):
        label, zone = f"cron {schedule.cron}", schedule.timezone
    else:
        label, zone = f"every {schedule.interval_seconds} s", "UTC"
    tz = ZoneInfo(zone)
    fires = [t.astimezone(tz) for t in fire_times(schedule, now, limit=NEXT_FIRES)]
    return ScheduleView(label, zone, schedule.active, fires)


def _recent(svc: Services, deployment_id: str) -> list[FlowRun]:
    return svc.store.list_runs(RunFilter(deployment_id=deployment_id), RECENT).items


@router.get("/deployments")
def deployments_page(request: Request, svc: ServicesDep, _: PageKey) -> Response:
    rows = [(d, _recent(svc, d.id)) for d in svc.store.list_deployments()]
    return page(request, "deployments.html", {"rows": rows})


def _deployment_page(
    request: Request,
    svc: Services,
    dep: Deployment,
    *,
    entered: dict[str, str] | None = None,
    error: str | None = None,
) -> Response:
    now = svc.clock()
    fields = forms.fields(dep.parameter_schema, dep.parameters)
    if entered is not None:
        forms.refill(fields, entered)
    context: dict[str, Any] = {
        "dep": dep,
        "schedules": [schedule_view(s, now) for s in dep.schedules],
        "recent": _recent(svc, dep.id),
        "fields": fields,
        "form_error": error,
    }
    return page(request, "deployment.html", context, status_code=422 if error else 200)


@router.get("/deployments/{deployment_id}")
def deployment_page(deployment_id: str, request: Request, svc: ServicesDep, _: PageKey) -> Response:
    return _deployment_page(request, svc, svc.store.get_deployment(deployment_id))


def _may_act(svc: Services, key: ApiKey, deployment_id: str) -> Deployment:
    dep = svc.store.get_deployment(deployment_id)
    if key.limited:
        require_pool(key, dep.work_pool)
    return dep


@router.post("/deployments/{deployment_id}/run")
async def run_deployment(
    deployment_id: str, request: Request, svc: ServicesDep, key: DeployerPost
) -> Response:
    """Run with the form's parameters; a bad value re-shows the form naming the field."""
    dep = _may_act(svc, key, deployment_id)
    form = await read_form(request)
    try:
        params = forms.parse(forms.fields(dep.parameter_schema, dep.parameters), form)
        run, _ = await runs.create_and_push(svc, dep.id, runs.RunCreate(parameters=params))
    except InvalidInput as exc:
        return _deployment_page(request, svc, dep, entered=form, error=str(exc))
    return RedirectResponse(f"/runs/{run.id}", status_code=303)


async def _set_paused(svc: Services, key: ApiKey, deployment_id: str, paused: bool) -> Response:
    dep = _may_act(svc, key, deployment_id)
    change = deployments.DeploymentUpdate(paused=paused)
    await run_in_threadpool(deployments.update, svc, dep.id, change)
    return RedirectResponse(f"/deployments/{dep.id}", status_code=303)


@router.post("/deployments/{deployment_id}/pause")
async def pause(deployment_id: str, svc: ServicesDep, key: DeployerPost) -> Response:
    return await _set_paused(svc, key, deployment_id, True)


@router.post("/deployments/{deployment_id}/resume")
async def resume(deployment_id: str, svc: ServicesDep, key: DeployerPost) -> Response:
    return await _set_paused(svc, key, deployment_id, False)
