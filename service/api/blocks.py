"""Block documents. Any key reads them masked (secret fields read ``********``); a
deployer key writes and deletes them. No API key reads a secret back, not even an admin
key: only the runner route, with a run token, for a block its deployment declares.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import BaseModel

from service.api.deps import DeployerKey, ServicesDep, ViewerKey
from service.api.responses import AUTHENTICATED, errors
from service.api.runner import RunnerRunDep
from service.blocks import audit, ops
from service.blocks.models import SLUG_PATTERN
from service.errors import DeploymentNotFound, Forbidden

router = APIRouter(prefix="/blocks", tags=["blocks"], responses=AUTHENTICATED)
runner_router = APIRouter(prefix="/runner/flow-runs/{run_id}/blocks", tags=["runner"])

SlugPath = Path(pattern=SLUG_PATTERN, description="The block type's slug")
NamePath = Path(
    min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", description="Name"
)


@router.get("", responses=errors(422))
def list_blocks(
    svc: ServicesDep,
    _: ViewerKey,
    type: str | None = Query(default=None, pattern=SLUG_PATTERN, description="Only this type"),
) -> list[ops.BlockView]:
    """Every block document (secret fields masked), by type then name."""
    return ops.list_views(svc, type)


@router.get("/{slug}/{name}", responses=errors(404, 422))
def get_block(
    svc: ServicesDep, _: ViewerKey, slug: str = SlugPath, name: str = NamePath
) -> ops.BlockView:
    return ops.get_view(svc, slug, name)


@router.put(
    "/{slug}/{name}",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": ops.BlockView, "description": "Replaced the existing document"},
        **errors(403, 404, 409, 413, 422, 503),
    },
)
def put_block(
    body: ops.BlockValues,
    response: Response,
    svc: ServicesDep,
    _: DeployerKey,
    slug: str = SlugPath,
    name: str = NamePath,
) -> ops.BlockView:
    """Create or replace a document: values validated by the type's schema (422 names
    the field), secret fields encrypted; a secret left out (or ``********``) is kept."""
    view, created = ops.put_block(svc, slug, name, body)
    if not created:
        response.status_code = status.HTTP_200_OK
    return view


@router.delete(
    "/{slug}/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(403, 404, 409, 422)
)
def delete_block(
    svc: ServicesDep, _: DeployerKey, slug: str = SlugPath, name: str = NamePath
) -> Response:
    """Delete a document no deployment uses (409 names the deployments that do)."""
    svc.store.delete_block(slug, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class BlockValuesOut(BaseModel):
    """A declared block's values, secrets in clear (for the run's flow code only)."""

    values: dict[str, Any]
    secret_fields: list[str]


@runner_router.get("/{slug}/{name}", responses=errors(403, 422, 503))
def read_block(
    run: RunnerRunDep, svc: ServicesDep, slug: str = SlugPath, name: str = NamePath
) -> BlockValuesOut:
    """The run's flow code loads a block its deployment declares (403 names any other)."""
    ref = f"{slug}/{name}"
    if run.deployment_id is None:
        raise DeploymentNotFound("(none)")
    deployment = svc.store.get_deployment(run.deployment_id)
    if ref not in deployment.blocks:
        raise Forbidden(
            f"block {ref!r} is not declared by deployment "
            f"{deployment.flow_name}/{deployment.name}: add it to the deployment's blocks"
        )
    values = ops.read_values(svc, slug, name)
    audit.block_read(svc, run, ref)
    return BlockValuesOut(values=values, secret_fields=ops.get_type(svc, slug).secret_fields)
