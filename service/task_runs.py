"""Task runs of a flow run: batched reports from the runner, lists and the graph."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from service.models import FlowRun, TaskRun, TaskRunState
from service.services import Services

#: Task-run snapshots one report may carry (the SDK sends at most 500).
MAX_BATCH = 1000


class TaskRunBatch(BaseModel):
    task_runs: Annotated[list[TaskRun], Field(max_length=MAX_BATCH)]


class GraphNode(BaseModel):
    id: str
    name: str
    state: TaskRunState
    start_time: datetime | None
    end_time: datetime | None
    duration_seconds: float | None
    attempts: int


class GraphEdge(BaseModel):
    source: str
    target: str


class TaskGraph(BaseModel):
    flow_run_id: str
    nodes: list[GraphNode]
    edges: list[GraphEdge]


def record(svc: Services, run: FlowRun, batch: TaskRunBatch) -> None:
    """Store the batch's snapshots under ``run`` (the flow run id is the server's, not the
    reporter's)."""
    stamped = [tr.model_copy(update={"flow_run_id": run.id}) for tr in batch.task_runs]
    svc.store.upsert_task_runs(run.id, stamped)


def graph(run_id: str, task_runs: list[TaskRun]) -> TaskGraph:
    """Nodes with states and timings; an edge from each known upstream task run."""
    known = {tr.id for tr in task_runs}
    nodes = [
        GraphNode(
            id=tr.id,
            name=tr.name,
            state=tr.state,
            start_time=tr.start_time,
            end_time=tr.end_time,
            duration_seconds=(
                (tr.end_time - tr.start_time).total_seconds()
                if tr.start_time is not None and tr.end_time is not None
                else None
            ),
            attempts=tr.attempts,
        )
        for tr in task_runs
    ]
    edges = [
        GraphEdge(source=up, target=tr.id) for tr in task_runs for up in tr.upstream if up in known
    ]
    return TaskGraph(flow_run_id=run_id, nodes=nodes, edges=edges)
