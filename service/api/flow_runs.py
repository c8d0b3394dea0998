from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, Field

from service import runs
from service.api.deps import DeployerKey, ServicesDep, ViewerKey
from service.api.responses import AUTHENTICATED, errors
from service.errors import InvalidInput
from service.models import FlowRun, LogLine, StateRecord
from service.run_queries import infra_links, resolve_run, waiting_reasons
from service.security import require_pool
from service.states import StateType
from service.store.base import RunFilter
from service.task_runs import resolve_task_run

router = APIRouter(prefix="/flow-runs", tags=["flow runs"], responses=AUTHENTICATED)
#: ``count=true`` counts this many matching runs at most.
COUNT_AT_MOST = 10_000


class FlowRunPage(BaseModel):
    items: list[FlowRun]
    next_cursor: str | None
    total: int | None = Field(
        default=None,
        description=f"How many runs match in all (only with `count=true`), counted up to "
        f"{COUNT_AT_MOST}: that number means as many or more",
    )


class FlowRunDetail(FlowRun):
    state_history: list[StateRecord]
    infra_links: dict[str, str]
    waiting_reasons: list[str] = Field(
        default_factory=list,
        description="Why a SCHEDULED run has not started: not due yet, paused pool or "
        "deployment, a full concurrency limit, no platform capacity",
    )


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
    flow_name: str | None = Query(default=None, max_length=200),
    tag: str | None = Query(default=None, max_length=200),
    name: str | None = Query(default=None, max_length=100, description="Exact run name"),
    since: AwareDatetime | None = Query(
        default=None, description="Expected start (with by=began: began) at or after this"
    ),
    order: Literal["desc", "asc"] = Query(default="desc", description="Newest or oldest first"),
    by: Literal["expected_start", "began"] = Query(
        default="expected_start",
        description="Order and `since` by expected start, or by when runs began (started, "
        "or left SCHEDULED without running): runs that have not begun are left out",
    ),
    count: bool = Query(default=False, description="Also count every matching run"),
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = Query(default=None, max_length=500),
) -> FlowRunPage:
    """Newest first by expected start, or with ``by=began`` by when runs began
    (``order=asc``: oldest first); pass ``next_cursor`` back as ``cursor`` (with the same
    filter). A deleted deployment's runs keep its id and name."""
    flt = RunFilter(
        deployment_id,
        state,
        work_pool,
        flow_name=flow_name,
        tag=tag,
        name=name,
        since=since,
        ascending=order == "asc",
        by_began=by == "began",
    )
    try:
        page = svc.store.list_runs(flt, limit, cursor)
    except InvalidInput as exc:
        if exc.field != "cursor":
            raise
        raise InvalidInput("cursor", exc.message, where="query") from exc
    total = svc.store.count_runs(flt, cursor, COUNT_AT_MOST) if count else None
    return FlowRunPage(items=page.items, next_cursor=page.next_cursor, total=total)


@router.get("/{run_id}", responses=errors(404, 422))
def get_run(run_id: str, svc: ServicesDep, _: ViewerKey) -> FlowRunDetail:
    """A run by id, unique id prefix or name, with its history and why it waits."""
    run = resolve_run(svc.store, run_id)
    return FlowRunDetail(
        **run.model_dump(),
        state_history=svc.store.state_history(run.id),
        infra_links=infra_links(svc, run),
        waiting_reasons=waiting_reasons(svc, run, svc.clock()),
    )


@router.post("/{run_id}/cancel", responses=errors(403, 404, 409, 422, 502))
def cancel_run(run_id: str, svc: ServicesDep, key: DeployerKey) -> FlowRun:
    run = resolve_run(svc.store, run_id)
    if key.limited:
        require_pool(key, run.work_pool)
    return runs.cancel_run(svc, run.id)


@router.get("/{run_id}/logs", responses=errors(404, 422))
async def get_logs(
    run_id: str,
    svc: ServicesDep,
    _: ViewerKey,
    after: int = Query(default=0, ge=0, le=2**53 - 1, description="The last log id seen"),
    limit: int = Query(default=1000, ge=1, le=5000),
    tail: int | None = Query(
        default=None, ge=1, le=5000, description="Only the last N lines (then follow with after)"
    ),
    task_run: str | None = Query(
        default=None,
        min_length=1,
        max_length=300,
        description="Only the lines of this task run (its id, unique id prefix or name)",
    ),
) -> LogPage:
    """A page of at most ``limit`` lines and about ``log_read_max_bytes`` of messages;
    ``next_after`` continues it. ``tail`` gives the last lines instead; ``task_run``
    keeps the lines that task run wrote."""
    run_id = resolve_run(svc.store, run_id).id
    task_run_id = None
    if task_run is not None:
        task_run_id = resolve_task_run(svc.store.list_task_runs(run_id), task_run).id
    if tail is not None:
        lines = svc.store.read_logs_tail(run_id, tail, task_run_id=task_run_id)
        return LogPage(logs=lines, next_after=lines[-1].id if lines else after)
    lines = svc.store.read_logs(
        run_id,
        after_id=after,
        limit=limit,
        max_bytes=svc.settings.log_read_max_bytes,
        task_run_id=task_run_id,
    )
    return LogPage(logs=lines, next_after=lines[-1].id if lines else after)
