"""Work pools. Reading them needs any key; changing them needs an admin key, because a
pool's config decides what runs where (on a process pool: host commands and paths)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from service import pools
from service.api.deps import AdminKey, ServicesDep, ViewerKey
from service.api.responses import AUTHENTICATED, errors
from service.models import WorkPool

router = APIRouter(prefix="/work-pools", tags=["work pools"], responses=AUTHENTICATED)


@router.post("", status_code=status.HTTP_201_CREATED, responses=errors(403, 409, 413, 422))
def create_pool(body: pools.WorkPoolCreate, svc: ServicesDep, _: AdminKey) -> WorkPool:
    return pools.create_pool(svc, body)


@router.get("")
def list_pools(svc: ServicesDep, _: ViewerKey) -> list[WorkPool]:
    return svc.store.list_pools()


@router.get("/{name}", responses=errors(404))
def get_pool(name: str, svc: ServicesDep, _: ViewerKey) -> WorkPool:
    return svc.store.get_pool(name)


@router.patch("/{name}", responses=errors(403, 404, 413, 422))
def update_pool(name: str, body: pools.WorkPoolUpdate, svc: ServicesDep, _: AdminKey) -> WorkPool:
    return pools.update_pool(svc, name, body)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(403, 404, 409))
def delete_pool(name: str, svc: ServicesDep, _: AdminKey) -> Response:
    pools.delete_pool(svc, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
