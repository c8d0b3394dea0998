"""Endpoints for the runner inside a flow run's infrastructure; a run token authorises
exactly its own run, and only while that attempt is live."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status
from pydantic import BaseModel

from service import runs
from service.api.deps import RunnerRunDep, ServicesDep
from service.errors import DeploymentNotFound

router = APIRouter(prefix="/runner/flow-runs/{run_id}", tags=["runner"])
# The handlers are async: each is a few local store calls, cheaper inline than a
# threadpool hop; nothing here waits on a provider.


class RunSpec(BaseModel):
    id: str
    flow_name: str
    deployment_name: str
    entrypoint: str
    source: dict[str, Any]
    parameters: dict[str, Any]
    parameter_schema: dict[str, Any] | None
    run_count: int
    heartbeat_seconds: int
    timeout_seconds: int | None = None


class RunnerState(BaseModel):
    state: str
    name: str


@router.get("/spec")
async def spec(run: RunnerRunDep, svc: ServicesDep) -> RunSpec:
    if run.deployment_id is None:
        raise DeploymentNotFound("(none)")
    deployment = svc.store.get_deployment(run.deployment_id)
    return RunSpec(
        id=run.id,
        flow_name=run.flow_name,
        deployment_name=run.deployment_name,
        entrypoint=deployment.entrypoint,
        source=deployment.source.model_dump(),
        parameters=run.parameters,
        parameter_schema=deployment.parameter_schema,
        run_count=run.run_count,
        heartbeat_seconds=svc.settings.heartbeat_seconds,
        timeout_seconds=deployment.timeout_seconds,
    )


@router.post("/state")
async def report_state(run: RunnerRunDep, body: runs.StateReport, svc: ServicesDep) -> RunnerState:
    updated = runs.report_state(svc, run, body)
    return RunnerState(state=updated.state.type.value, name=updated.state.name)


@router.post("/logs", status_code=status.HTTP_204_NO_CONTENT)
async def logs(run: RunnerRunDep, body: runs.LogBatch, svc: ServicesDep) -> Response:
    runs.append_logs(svc, run, body)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/heartbeat")
async def heartbeat(run: RunnerRunDep, svc: ServicesDep) -> RunnerState:
    runs.heartbeat(svc, run)
    return RunnerState(state=run.state.type.value, name=run.state.name)
