from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from service.api.deps import ApiKeyDep, ServicesDep
from service.models import ApiKey, Strict
from service.security import create_api_key

router = APIRouter(prefix="/api-keys", tags=["api keys"])


class ApiKeyCreate(Strict):
    name: str = Field(min_length=1, max_length=200)


class ApiKeyCreated(BaseModel):
    id: str
    name: str
    #: Shown once, here; only its hash is stored.
    key: str


@router.post("", status_code=status.HTTP_201_CREATED)
def create_key(body: ApiKeyCreate, svc: ServicesDep, _: ApiKeyDep) -> ApiKeyCreated:
    record, secret = create_api_key(svc.store, body.name, svc.clock())
    return ApiKeyCreated(id=record.id, name=record.name, key=secret)


@router.get("")
def list_keys(svc: ServicesDep, _: ApiKeyDep) -> list[ApiKey]:
    return svc.store.list_api_keys()


@router.delete("/{key_id}")
def revoke_key(key_id: str, svc: ServicesDep, _: ApiKeyDep) -> ApiKey:
    return svc.store.revoke_api_key(key_id, svc.clock())
