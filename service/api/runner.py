"""Endpoints for the runner inside a flow run's infrastructure; a run token authorises
exactly its own run, and only while that attempt is live.

The infrastructure carries only a single-use bootstrap credential; the runner's first
call, ``POST …/exchange``, trades it for a run token the runner made and keeps in memory.
The bootstrap credential opens nothing else, and nothing once spent.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel

from service import param_schemas, runs
from service.api.deps import Credentials, ServicesDep, require_run_token
from service.errors import DeploymentNotFound, RunNotFound
from service.models import FlowRun
from service.security import BOOTSTRAP_PREFIX

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


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


async def require_runner(
    request: Request, run_id: str, svc: ServicesDep, creds: Credentials
) -> FlowRun:
    """:func:`require_run_token`, refusing a bootstrap credential (it opens only the
    exchange)."""
    if creds is not None and creds.credentials.startswith(BOOTSTRAP_PREFIX):
        raise _unauthorized("a bootstrap credential only opens POST .../exchange")
    return await require_run_token(request, run_id, svc, creds)


RunnerRunDep = Annotated[FlowRun, Depends(require_runner)]


@router.post("/exchange", status_code=status.HTTP_204_NO_CONTENT)
async def exchange(
    run_id: str, body: runs.TokenExchange, svc: ServicesDep, creds: Credentials
) -> Response:
    """Trade the bootstrap credential for the runner's own run token (once)."""
    if creds is None or not creds.credentials.startswith(BOOTSTRAP_PREFIX):
        raise _unauthorized("missing bootstrap credential")
    try:
        run = svc.store.get_run(run_id)
    except RunNotFound:
        run = None
    if run is None or not runs.runner_may_act(run):
        raise _unauthorized("invalid bootstrap credential for this flow run")
    if not runs.exchange_token(svc, run, creds.credentials, body):
        raise _unauthorized("invalid or already used bootstrap credential")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


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


@router.put("/parameter-schema", status_code=status.HTTP_204_NO_CONTENT)
async def record_parameter_schema(
    run: RunnerRunDep, body: param_schemas.SchemaReport, svc: ServicesDep
) -> Response:
    """Record the flow's parameter schema on the run's deployment, only while it has
    none (409 otherwise): how an ``image`` source's deployment gets its schema."""
    param_schemas.record(svc, run, body.parameter_schema)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
