"""Task runs: the runner reports them in batches; users list them and their graph."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from service import task_runs
from service.api.deps import ApiKeyDep, RunnerRunDep, ServicesDep
from service.models import TaskRun

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
