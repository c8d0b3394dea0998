"""Runs: the live list with filters and cursor paging, a run's page, its logs, actions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from service import runs, task_runs
from service.api.deps import ServicesDep
from service.errors import InvalidInput
from service.models import FlowRun, LogLine
from service.run_queries import infra_links, resolve_run, waiting_reasons
from service.security import require_pool
from service.services import Services
from service.states import StateType, is_terminal
from service.store.base import RunFilter
from service.web.common import WebRoute
from service.web.graph import layout
from service.web.render import page
from service.web.session import DeployerPost, PageKey

router = APIRouter(route_class=WebRoute)
PAGE_SIZE = 50
#: A run page shows this many of the newest log lines, then follows new ones.
LOG_LINES = 1000
SINCE = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}
_ID_PREFIX = re.compile(r"^[0-9a-f-]{4,36}$")


@dataclass(frozen=True)
class RunQuery:
    """The list's filters, as the query string carries them."""

    state: str = ""
    deployment: str = ""
    flow: str = ""
    tag: str = ""
    pool: str = ""
    since: str = ""
    q: str = ""

    def to_filter(self, svc: Services) -> RunFilter:
        states = [StateType(self.state)] if self.state in StateType.__members__ else []
        search: dict[str, Any] = {}
        if self.q:
            search = {"id_prefix": self.q} if _ID_PREFIX.match(self.q) else {"name": self.q}
        since = SINCE.get(self.since)
        return RunFilter(
            deployment_id=self.deployment or None,
            states=states,
            work_pool=self.pool or None,
            flow_name=self.flow or None,
            tag=self.tag or None,
            since=svc.clock() - since if since else None,
            **search,
        )

    def query_string(self) -> str:
        from urllib.parse import urlencode

        return urlencode({k: v for k, v in self.__dict__.items() if v})


def _table(svc: Services, query: RunQuery, cursor: str | None) -> dict[str, Any]:
    result = svc.store.list_runs(query.to_filter(svc), PAGE_SIZE, cursor)
    return {
        "runs": result.items,
        "next_cursor": result.next_cursor,
        "query": query,
        "live": cursor is None,
        "qs": query.query_string(),
    }


#: A filter from the query string (empty: not filtered).
Filter = Annotated[str, Query(max_length=200)]


def run_query(
    state: Filter = "",
    deployment: Filter = "",
    flow: Filter = "",
    tag: Filter = "",
    pool: Filter = "",
    since: Filter = "",
    q: Filter = "",
) -> RunQuery:
    """The list's filters from the query string (what the filter form sends)."""
    return RunQuery(state, deployment, flow, tag, pool, since, q.strip())


QueryDep = Annotated[RunQuery, Depends(run_query)]


@router.get("/runs")
def runs_page(
    request: Request,
    svc: ServicesDep,
    _: PageKey,
    query: QueryDep,
    cursor: str | None = Query(default=None, max_length=500),
) -> Response:
    context = _table(svc, query, cursor)
    context |= {
        "states": [s.value for s in StateType],
        "deployments": svc.store.list_deployments(),
        "pools": svc.store.list_pools(),
        "since_options": list(SINCE),
    }
    return page(request, "runs.html", context)


@router.get("/runs/table")
def runs_table(request: Request, svc: ServicesDep, _: PageKey, query: QueryDep) -> Response:
    """The first page of the table alone: what the list's poll fetches (one request)."""
    return page(request, "_runs_table.html", _table(svc, query, None))


def _live(svc: Services, run: FlowRun) -> dict[str, Any]:
    """What the live part of a run's page shows; re-rendered by its poll."""
    graph = task_runs.graph(run.id, svc.store.list_task_runs(run.id))
    return {
        "run": run,
        "history": svc.store.state_history(run.id),
        "waiting": waiting_reasons(svc, run, svc.clock()),
        "links": infra_links(svc, run),
        "graph": layout(graph),
        "terminal": is_terminal(run.state.type),
        "traceback": (run.error or {}).get("traceback"),
    }


@router.get("/runs/{run_ref}")
def run_page(run_ref: str, request: Request, svc: ServicesDep, _: PageKey) -> Response:
    run = resolve_run(svc.store, run_ref)
    lines, older = _tail(svc, run.id, None)
    context = _live(svc, run) | {
        "logs": lines,
        "older": older,
        "after": lines[-1].id if lines else 0,
        "log_limit": LOG_LINES,
    }
    return page(request, "run.html", context)


def _tail(svc: Services, run_id: str, before: int | None) -> tuple[list[LogLine], bool]:
    """The last :data:`LOG_LINES` lines (below id ``before``) and whether older exist."""
    lines = svc.store.read_logs_tail(run_id, LOG_LINES + 1, before_id=before)
    return lines[-LOG_LINES:], len(lines) > LOG_LINES


@router.get("/runs/{run_id}/logs/older")
def run_logs_older(
    run_id: str,
    request: Request,
    svc: ServicesDep,
    _: PageKey,
    before: int = Query(ge=1, le=2**53 - 1),
) -> Response:
    """The :data:`LOG_LINES` lines before id ``before`` (htmx puts them where the "older"
    button was), and a new button when there are older ones still."""
    run = svc.store.get_run(run_id)
    lines, older = _tail(svc, run.id, before)
    context = {"run": run, "logs": lines, "older": older, "log_limit": LOG_LINES}
    return page(request, "_log_older_lines.html", context | {"before": lines[0].id if lines else 0})


@router.get("/runs/{run_id}/live")
def run_live(run_id: str, request: Request, svc: ServicesDep, _: PageKey) -> Response:
    return page(request, "_run_live.html", _live(svc, svc.store.get_run(run_id)))


@router.get("/runs/{run_id}/logs")
def run_logs(
    run_id: str,
    request: Request,
    svc: ServicesDep,
    _: PageKey,
    after: int = Query(default=0, ge=0, le=2**53 - 1),
) -> Response:
    """New log lines after ``after`` (appended by htmx) and the poller that follows on;
    once the run has ended and nothing new came, the poller stops."""
    run = svc.store.get_run(run_id)
    lines = svc.store.read_logs(
        run.id, after_id=after, limit=1000, max_bytes=svc.settings.log_read_max_bytes
    )
    more = bool(lines) or not is_terminal(run.state.type)
    context = {"run": run, "logs": lines, "after": lines[-1].id if lines else after, "more": more}
    return page(request, "_logs.html", context)


@router.post("/runs/{run_id}/cancel")
async def cancel(run_id: str, svc: ServicesDep, key: DeployerPost) -> Response:
    run = svc.store.get_run(run_id)
    if key.limited:
        require_pool(key, run.work_pool)
    await run_in_threadpool(runs.cancel_run, svc, run.id)
    return RedirectResponse(f"/runs/{run.id}", status_code=303)


@router.post("/runs/{run_id}/rerun")
async def rerun(run_id: str, svc: ServicesDep, key: DeployerPost) -> Response:
    """A new run of the same deployment with the same parameters and tags."""
    run = svc.store.get_run(run_id)
    if run.deployment_id is None:
        raise InvalidInput("run_id", "this run's deployment is gone: it cannot run again")
    if key.limited:
        require_pool(key, run.work_pool)
    body = runs.RunCreate(parameters=run.parameters, tags=run.tags)
    new, _ = await runs.create_and_push(svc, run.deployment_id, body)
    return RedirectResponse(f"/runs/{new.id}", status_code=303)
