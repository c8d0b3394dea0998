from __future__ import annotations

from fastapi import APIRouter, Query, Response, status

from service import deployments, runs
from service.api.deps import ApiKeyDep, ServicesDep
from service.models import Deployment, FlowRun

router = APIRouter(prefix="/deployments", tags=["deployments"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": Deployment, "description": "Updated an existing deployment"}},
)
def upsert_deployment(
    body: deployments.DeploymentCreate, response: Response, svc: ServicesDep, _: ApiKeyDep
) -> Deployment:
    """Create, or update the deployment with the same (flow_name, name)."""
    deployment, created = deployments.deploy(svc, body)
    if not created:
        response.status_code = status.HTTP_200_OK
    return deployment


@router.get("")
def list_deployments(
    svc: ServicesDep,
    _: ApiKeyDep,
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


@router.get("/{deployment_id}")
def get_deployment(deployment_id: str, svc: ServicesDep, _: ApiKeyDep) -> Deployment:
    return svc.store.get_deployment(deployment_id)


@router.patch("/{deployment_id}")
def update_deployment(
    deployment_id: str, body: deployments.DeploymentUpdate, svc: ServicesDep, _: ApiKeyDep
) -> Deployment:
    return deployments.update(svc, deployment_id, body)


@router.delete("/{deployment_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_deployment(deployment_id: str, svc: ServicesDep, _: ApiKeyDep) -> Response:
    svc.store.delete_deployment(deployment_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{deployment_id}/runs",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": FlowRun, "description": "Existing run with this idempotency key"}},
)
async def create_run(
    deployment_id: str,
    response: Response,
    svc: ServicesDep,
    _: ApiKeyDep,
    body: runs.RunCreate | None = None,
) -> FlowRun:
    """Create a flow run; one due now is pushed to its pool before this returns."""
    run, created = await runs.create_and_push(svc, deployment_id, body or runs.RunCreate())
    if not created:
        response.status_code = status.HTTP_200_OK
    return run
