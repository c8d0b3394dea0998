"""Work pools: type, config (with what provisioning recorded), concurrency in use and
runs waiting; admins pause and resume them (create and edit: ``pages_admin``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from service import pools
from service.api.deps import ServicesDep
from service.models import WorkPool
from service.services import Services
from service.states import ACTIVE, StateType
from service.store.base import RunFilter
from service.web.common import WebRoute
from service.web.render import page
from service.web.session import AdminPost, PageKey

router = APIRouter(route_class=WebRoute)
_SECRET_NAME = re.compile(r"secret|password|token|credential|private", re.IGNORECASE)


@dataclass(frozen=True)
class PoolView:
    pool: WorkPool
    in_use: int
    waiting: int


def masked(config: dict[str, Any]) -> dict[str, Any]:
    """The config with values under secret-looking names hidden."""
    return {
        k: "••••••" if _SECRET_NAME.search(k) else masked(v) if isinstance(v, dict) else v
        for k, v in config.items()
    }


def pool_view(svc: Services, pool: WorkPool) -> PoolView:
    in_use = svc.store.count_runs(RunFilter(work_pool=pool.name, states=sorted(ACTIVE)))
    due = RunFilter(work_pool=pool.name, states=[StateType.SCHEDULED], before=svc.clock())
    return PoolView(pool, in_use, svc.store.count_runs(due))


@router.get("/work-pools")
def pools_page(request: Request, svc: ServicesDep, _: PageKey) -> Response:
    views = [pool_view(svc, p) for p in svc.store.list_pools()]
    return page(request, "pools.html", {"views": views})


@router.get("/work-pools/{name}")
def pool_page(name: str, request: Request, svc: ServicesDep, _: PageKey) -> Response:
    pool = svc.store.get_pool(name)
    context = {
        "view": pool_view(svc, pool),
        "config": masked(pool.config),
        "deployments": svc.store.list_deployments(work_pool=name),
    }
    return page(request, "pool.html", context)


async def _set_paused(svc: Services, name: str, paused: bool) -> Response:
    change = pools.WorkPoolUpdate(paused=paused)
    await run_in_threadpool(pools.update_pool, svc, name, change)
    return RedirectResponse(f"/work-pools/{name}", status_code=303)


@router.post("/work-pools/{name}/pause")
async def pause(name: str, svc: ServicesDep, _: AdminPost) -> Response:
    return await _set_paused(svc, name, True)


@router.post("/work-pools/{name}/resume")
async def resume(name: str, svc: ServicesDep, _: AdminPost) -> Response:
    return await _set_paused(svc, name, False)
