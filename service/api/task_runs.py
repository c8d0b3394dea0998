"""Task runs: the runner reports them in batches; users list them and their graph."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field

from service import task_runs
from service.api.deps import ApiKeyDep, RunnerRunDep, ServicesDep
from service.errors import CacheRecordNotFound
from service.models import CacheRecord, TaskRun

router = APIRouter(tags=["task runs"])


@router.post("/runner/flow-runs/{run_id}/task-runs", status_code=status.HTTP_204_NO_CONTENT)
async def report_task_runs(
    run: RunnerRunDep, body: task_runs.TaskRunBatch, svc: ServicesDep
) -> Response:
    """Latest snapshots of the run's task runs (a batch; same id: replaced)."""
    task_runs.record(svc, run, body)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/flow-runs/{run_id}/task-runs")
async def list_task_runs(run_id: str, svc: ServicesDep, _: ApiKeyDep) -> list[TaskRun]:
    svc.store.get_run(run_id)
    return svc.store.list_task_runs(run_id)


@router.get("/flow-runs/{run_id}/graph")
async def task_graph(run_id: str, svc: ServicesDep, _: ApiKeyDep) -> task_runs.TaskGraph:
    svc.store.get_run(run_id)
    return task_runs.graph(run_id, svc.store.list_task_runs(run_id))


CacheKey = Annotated[str, Path(pattern=r"^[A-Za-z0-9._:-]{1,128}$")]


class CacheEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    result_key: Annotated[str, Field(min_length=1, max_length=500)]
    expires_at: datetime | None = None


@router.get("/runner/flow-runs/{run_id}/cache/{key}")
async def get_cache_record(run: RunnerRunDep, key: CacheKey, svc: ServicesDep) -> CacheRecord:
    """The task cache record under ``key``; 404 when missing or expired."""
    record = svc.store.get_cache_record(key, svc.clock())
    if record is None:
        raise CacheRecordNotFound(key)
    return record


@router.put("/runner/flow-runs/{run_id}/cache/{key}", status_code=status.HTTP_204_NO_CONTENT)
async def put_cache_record(
    run: RunnerRunDep, key: CacheKey, body: CacheEntry, svc: ServicesDep
) -> Response:
    record = CacheRecord(key=key, result_key=body.result_key, expires_at=body.expires_at)
    svc.store.put_cache_record(record)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
