"""Block types: any key reads them (built-in and user types); a deployer key registers
and deletes user types."""

from __future__ import annotations

from fastapi import APIRouter, Path, Response, status

from service.api.deps import DeployerKey, ServicesDep, ViewerKey
from service.api.responses import AUTHENTICATED, errors
from service.blocks import ops
from service.blocks.models import SLUG_PATTERN, BlockType

router = APIRouter(prefix="/block-types", tags=["blocks"], responses=AUTHENTICATED)
SlugPath = Path(pattern=SLUG_PATTERN, description="The block type's slug")


@router.get("")
def list_block_types(svc: ServicesDep, _: ViewerKey) -> list[BlockType]:
    """Every block type: the built-in ones first, then those users registered."""
    return ops.list_types(svc)


@router.get("/{slug}", responses=errors(404, 422))
def get_block_type(svc: ServicesDep, _: ViewerKey, slug: str = SlugPath) -> BlockType:
    return ops.get_type(svc, slug)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": BlockType, "description": "Replaced an existing user type"},
        **errors(403, 409, 413, 422),
    },
)
def register_block_type(
    body: ops.BlockTypeCreate, response: Response, svc: ServicesDep, _: DeployerKey
) -> BlockType:
    """Register (or replace) a user block type from a JSON Schema; its top-level
    ``writeOnly`` properties are secret."""
    block_type, created = ops.register_type(svc, body)
    if not created:
        response.status_code = status.HTTP_200_OK
    return block_type


@router.delete(
    "/{slug}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(403, 404, 409, 422)
)
def delete_block_type(svc: ServicesDep, _: DeployerKey, slug: str = SlugPath) -> Response:
    """Delete a user type that has no documents (built-in types stay)."""
    ops.delete_type(svc, slug)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
