"""Task runs: the runner reports them in batches; users list them and their graph."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field

from service import task_runs
from service.api.deps import RunnerRunDep, ServicesDep, ViewerKey
from service.api.responses import AUTHENTICATED, errors
from service.errors import CacheRecordNotFound
from service.models import CacheRecord, TaskRun
from service.run_queries import resolve_run

router = APIRouter(tags=["task runs"], responses=AUTHENTICATED)
#: The runner's routes (run token): included with the runner's documented errors.
runner_router = APIRouter(tags=["task runs"])


@runner_router.post("/runner/flow-runs/{run_id}/task-runs", status_code=status.HTTP_204_NO_CONTENT)
async def report_task_runs(
    run: RunnerRunDep, body: task_runs.TaskRunBatch, svc: ServicesDep
) -> Response:
    """Latest snapshots of the run's task runs (a batch; same id: replaced)."""
    task_runs.record(svc, run, body)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/flow-runs/{run_id}/task-runs", responses=errors(404, 422))
def list_task_runs(run_id: str, svc: ServicesDep, _: ViewerKey) -> list[TaskRun]:
    """The run's task runs (by run id, unique id prefix or name), oldest first."""
    return svc.store.list_task_runs(resolve_run(svc.store, run_id).id)


@router.get("/flow-runs/{run_id}/graph", responses=errors(404, 422))
def task_graph(run_id: str, svc: ServicesDep, _: ViewerKey) -> task_runs.TaskGraph:
    """The run's task runs as nodes, and which results fed which as edges."""
    found = resolve_run(svc.store, run_id).id
    return task_runs.graph(found, svc.store.list_task_runs(found))


CacheKey = Annotated[str, Path(pattern=r"^[A-Za-z0-9._:-]{1,128}$")]


class CacheEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    result_key: Annotated[str, Field(min_length=1, max_length=500)]
    expires_at: datetime | None = None


@runner_router.get("/runner/flow-runs/{run_id}/cache/{key}", responses=errors(422))
async def get_cache_record(run: RunnerRunDep, key: CacheKey, svc: ServicesDep) -> CacheRecord:
    """The task cache record under ``key`` of this run's deployment; 404 when missing or
    expired (or another deployment's)."""
    record = svc.store.get_cache_record(task_runs.scoped_cache_key(run, key), svc.clock())
    if record is None:
        raise CacheRecordNotFound(key)
    return record.model_copy(update={"key": key})


@runner_router.put(
    "/runner/flow-runs/{run_id}/cache/{key}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(422),
)
async def put_cache_record(
    run: RunnerRunDep, key: CacheKey, body: CacheEntry, svc: ServicesDep
) -> Response:
    """Store the task cache record under ``key`` for this run's deployment."""
    scoped = task_runs.scoped_cache_key(run, key)
    svc.store.put_cache_record(
        CacheRecord(key=scoped, result_key=body.result_key, expires_at=body.expires_at)
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
