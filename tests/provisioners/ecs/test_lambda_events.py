"""The Lambda handler driving an ECS pool in moto: a scheduled event's tick dispatches a due
run to ECS; ECS's "Task State Change" event for the stopped task makes the run final at once,
with teardown, without waiting for a tick."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.factories import EVENTS_DIR, ecs_task_stopped_event, image_deployment_body

from service import lambda_handler
from service.deployments import DeploymentCreate, deploy
from service.pools import WorkPoolCreate, create_pool
from service.runs import RunCreate, create_run
from service.states import StateType

from .conftest import client

EVENTS = EVENTS_DIR


@dataclass
class Context:
    remaining_ms: int = 300_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


@pytest.fixture
def lambda_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PUSHPOOL_HOME", str(tmp_path / "home"))
    lambda_handler.services.cache_clear()
    yield
    if lambda_handler.services.cache_info().currsize:
        lambda_handler.services().store.close()
    lambda_handler.services.cache_clear()


def test_tick_dispatches_to_ecs_and_the_stop_event_finishes_the_run(
    lambda_env: None,
    pool_config: dict[str, Any],
    tasks_pinned: None,
    backend_task: Callable[[str], Any],
) -> None:
    svc = lambda_handler.services()
    create_pool(svc, WorkPoolCreate(name="demo", type="ecs", config=pool_config))
    body = image_deployment_body("demo")
    dep, _ = deploy(svc, DeploymentCreate.model_validate(body))
    run, _ = create_run(svc, dep.id, RunCreate(), push=False)

    report = lambda_handler.handler(event("eventbridge-scheduled.json"), Context())
    assert report["dispatched"] == 1
    pending = svc.store.get_run(run.id)
    assert pending.state.type == StateType.PENDING and pending.infra is not None
    task_arn = pending.infra.id
    assert task_arn.startswith("arn:aws:ecs:")

    # The container dies (out of memory) without the runner's final report.
    cluster = str(pending.infra.data["cluster"])
    client("ecs").stop_task(cluster=cluster, task=task_arn, reason="OutOfMemoryError: killed")
    backend_task(task_arn).containers[0].exitCode = 137
    stopped = ecs_task_stopped_event(task_arn, run.id, cluster)

    result = lambda_handler.handler(stopped, Context())
    assert result == {"handled": True, "run_id": run.id, "outcome": "crashed"}
    crashed = svc.store.get_run(run.id)
    assert crashed.state.type == StateType.CRASHED
    assert "OutOfMemoryError" in (crashed.state.message or "")
    assert crashed.error is not None and crashed.error["exit_code"] == 137
    assert svc.store.pending_teardowns(10) == []
