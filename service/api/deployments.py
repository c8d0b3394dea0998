"""Deployments: any key reads them; a deployer key changes them and starts runs, in the
work pools it may use."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Query, Response, status

from service import deployments, runs
from service.api.deps import DeployerKey, ServicesDep, ViewerKey
from service.api.responses import AUTHENTICATED, errors
from service.models import Deployment, FlowRun
from service.security import require_pool

router = APIRouter(prefix="/deployments", tags=["deployments"], responses=AUTHENTICATED)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": Deployment, "description": "Updated an existing deployment"},
        **errors(403, 404, 409, 413, 422),
    },
)
def upsert_deployment(
    body: deployments.DeploymentCreate, response: Response, svc: ServicesDep, key: DeployerKey
) -> Deployment:
    """Create, or update the deployment with the same (flow_name, name)."""
    if key.limited:
        require_pool(key, body.work_pool)
        with contextlib.suppress(LookupError):
            require_pool(key, svc.store.find_deployment(body.flow_name, body.name).work_pool)
    deployment, created = deployments.deploy(svc, body)
    if not created:
        response.status_code = status.HTTP_200_OK
    return deployment


@router.get("", responses=errors(422))
def list_deployments(
    svc: ServicesDep,
    _: ViewerKey,
    flow_name: str | None = Query(default=None, max_length=200),
    name: str | None = Query(default=None, max_length=200),
    work_pool: str | None = Query(default=None, max_length=100),
) -> list[Deployment]:
    if flow_name is not None and name is not None:
        try:
            return [svc.store.find_deployment(flow_name, name)]
        except LookupError:
            return []
    found = svc.store.list_deployments(work_pool=work_pool)
    return [
        d
        for d in found
        if (flow_name is None or d.flow_name == flow_name) and (name is None or d.name == name)
    ]


@router.get("/{deployment_id}", responses=errors(404))
def get_deployment(deployment_id: str, svc: ServicesDep, _: ViewerKey) -> Deployment:
    return svc.store.get_deployment(deployment_id)


@router.patch("/{deployment_id}", responses=errors(403, 404, 409, 413, 422))
def update_deployment(
    deployment_id: str, body: deployments.DeploymentUpdate, svc: ServicesDep, key: DeployerKey
) -> Deployment:
    if key.limited:
        current = svc.store.get_deployment(deployment_id).work_pool
        for pool in (current, body.work_pool or current):
            require_pool(key, pool)
    return deployments.update(svc, deployment_id, body)


@router.delete(
    "/{deployment_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(403, 404, 409)
)
def delete_deployment(deployment_id: str, svc: ServicesDep, key: DeployerKey) -> Response:
    if key.limited:
        require_pool(key, svc.store.get_deployment(deployment_id).work_pool)
    deployments.delete(svc, deployment_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{deployment_id}/runs",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": FlowRun, "description": "Existing run with this idempotency key"},
        **errors(403, 404, 409, 413, 422, 502),
    },
)
async def create_run(
    deployment_id: str,
    response: Response,
    svc: ServicesDep,
    key: DeployerKey,
    body: runs.RunCreate | None = None,
) -> FlowRun:
    """Create a flow run; one due now is pushed to its pool before this returns."""
    if key.limited:  # (a read only for keys limited to some pools)
        require_pool(key, svc.store.get_deployment(deployment_id).work_pool)
    run, created = await runs.create_and_push(svc, deployment_id, body or runs.RunCreate())
    if not created:
        response.status_code = status.HTTP_200_OK
    return run
