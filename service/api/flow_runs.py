from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel

from service import runs
from service.api.deps import DeployerKey, ServicesDep, ViewerKey
from service.api.responses import AUTHENTICATED, errors
from service.models import FlowRun, LogLine, StateRecord
from service.security import require_pool
from service.states import StateType
from service.store.base import RunFilter

router = APIRouter(prefix="/flow-runs", tags=["flow runs"], responses=AUTHENTICATED)


class FlowRunPage(BaseModel):
    items: list[FlowRun]
    next_cursor: str | None


class FlowRunDetail(FlowRun):
    state_history: list[StateRecord]
    infra_links: dict[str, str]


class LogPage(BaseModel):
    logs: list[LogLine]
    next_after: int


@router.get("", responses=errors(422))
async def list_runs(
    svc: ServicesDep,
    _: ViewerKey,
    deployment_id: str | None = Query(default=None, max_length=100),
    state: list[StateType] = Query(default=[]),
    work_pool: str | None = Query(default=None, max_length=100),
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = Query(default=None, max_length=500),
) -> FlowRunPage:
    """Newest first (by expected start); pass ``next_cursor`` back as ``cursor``."""
    page = svc.store.list_runs(RunFilter(deployment_id, state, work_pool), limit, cursor)
    return FlowRunPage(items=page.items, next_cursor=page.next_cursor)


@router.get("/{run_id}", responses=errors(404))
def get_run(run_id: str, svc: ServicesDep, _: ViewerKey) -> FlowRunDetail:
    run = svc.store.get_run(run_id)
    links: dict[str, str] = {}
    if run.infra is not None:
        try:
            links = svc.dispatcher.provisioner(run.work_pool).infra_links(run.infra)
        except LookupError:
            links = {}
    return FlowRunDetail(
        **run.model_dump(), state_history=svc.store.state_history(run_id), infra_links=links
    )


@router.post("/{run_id}/cancel", responses=errors(403, 404, 409, 502))
def cancel_run(run_id: str, svc: ServicesDep, key: DeployerKey) -> FlowRun:
    if key.limited:
        require_pool(key, svc.store.get_run(run_id).work_pool)
    return runs.cancel_run(svc, run_id)


@router.get("/{run_id}/logs", responses=errors(404, 422))
async def get_logs(
    run_id: str,
    svc: ServicesDep,
    _: ViewerKey,
    after: int = Query(default=0, ge=0),
    limit: int = Query(default=1000, ge=1, le=5000),
) -> LogPage:
    svc.store.get_run(run_id)
    lines = svc.store.read_logs(run_id, after_id=after, limit=limit)
    return LogPage(logs=lines, next_after=lines[-1].id if lines else after)
