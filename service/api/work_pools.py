from __future__ import annotations

from fastapi import APIRouter, Response, status

from service import pools
from service.api.deps import ApiKeyDep, ServicesDep
from service.models import WorkPool

router = APIRouter(prefix="/work-pools", tags=["work pools"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_pool(body: pools.WorkPoolCreate, svc: ServicesDep, _: ApiKeyDep) -> WorkPool:
    return pools.create_pool(svc, body)


@router.get("")
def list_pools(svc: ServicesDep, _: ApiKeyDep) -> list[WorkPool]:
    return svc.store.list_pools()


@router.get("/{name}")
def get_pool(name: str, svc: ServicesDep, _: ApiKeyDep) -> WorkPool:
    return svc.store.get_pool(name)


@router.patch("/{name}")
def update_pool(name: str, body: pools.WorkPoolUpdate, svc: ServicesDep, _: ApiKeyDep) -> WorkPool:
    return pools.update_pool(svc, name, body)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_pool(name: str, svc: ServicesDep, _: ApiKeyDep) -> Response:
    svc.store.delete_pool(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
