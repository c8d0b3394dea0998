"""Task runs of a flow run: batched reports from the runner, lists and the graph."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from service.errors import InvalidInput, TaskRunNotFound
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


def resolve_task_run(task_runs: list[TaskRun], ref: str) -> TaskRun:
    """The task run of ``task_runs`` whose id is ``ref``, or whose name (``extract``,
    ``transform-3``) or unique id prefix it is.

    Raises ``TaskRunNotFound`` when none matches and ``InvalidInput`` (naming the
    matches) when several do.
    """
    for tr in task_runs:
        if tr.id == ref:
            return tr
    found = [tr for tr in task_runs if tr.name == ref] or [
        tr for tr in task_runs if tr.id.startswith(ref)
    ]
    if not found:
        raise TaskRunNotFound(ref)
    if len(found) > 1:
        matches = ", ".join(f"{tr.id} ({tr.name})" for tr in found[:5])
        raise InvalidInput(
            "task_run", f"{ref!r} matches more than one task run: {matches}", where="query"
        )
    return found[0]


def scoped_cache_key(run: FlowRun, key: str) -> str:
    """The store key of the SDK's cache ``key`` for ``run``: cache records are per
    deployment (a run without one has its own), so one deployment's run token can
    neither read nor overwrite another deployment's records, while every run of the same
    deployment shares them. A hex digest: it fits the store's 128-character keys."""
    scope = f"deployment:{run.deployment_id}" if run.deployment_id else f"run:{run.id}"
    return hashlib.sha256(f"{scope}\0{key}".encode()).hexdigest()
