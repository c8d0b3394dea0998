from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import BaseModel, Field, model_validator

from service.api.deps import AdminKey, DeployerKey, ServicesDep
from service.api.responses import PRIVILEGED, errors
from service.models import ApiKey, Name, Role, Strict
from service.security import check_grant, create_api_key

router = APIRouter(prefix="/api-keys", tags=["api keys"], responses=PRIVILEGED)


class ApiKeyCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    role: Role = Field(default=Role.VIEWER, description="At most the creating key's role")
    pools: list[Name] | None = Field(
        default=None,
        max_length=100,
        description="A deployer's work pools (default: every pool the creating key may use)",
    )

    @model_validator(mode="after")
    def _pools_for_deployers(self) -> ApiKeyCreate:
        if self.pools is not None and self.role != Role.DEPLOYER:
            raise ValueError("pools: only a deployer key is limited to pools")
        return self


class ApiKeyCreated(BaseModel):
    id: str
    name: str
    role: Role
    pools: list[str] | None
    #: Shown once, here; only its hash is stored.
    key: str


@router.post("", status_code=status.HTTP_201_CREATED, responses=errors(413, 422))
def create_key(body: ApiKeyCreate, svc: ServicesDep, caller: DeployerKey) -> ApiKeyCreated:
    """Create a key no stronger than the caller's: a deployer makes deployer or viewer
    keys, limited to its own pools if it is limited."""
    pools = body.pools
    if body.role == Role.DEPLOYER and pools is None and caller.role == Role.DEPLOYER:
        pools = caller.pools
    check_grant(caller, body.role, pools)
    record, secret = create_api_key(svc.store, body.name, svc.clock(), body.role, pools)
    return ApiKeyCreated(
        id=record.id, name=record.name, role=record.role, pools=record.pools, key=secret
    )


@router.get("")
def list_keys(svc: ServicesDep, _: AdminKey) -> list[ApiKey]:
    return svc.store.list_api_keys()


@router.delete("/{key_id}", responses=errors(404, 409))
def revoke_key(key_id: str, svc: ServicesDep, _: AdminKey) -> ApiKey:
    """Revoke a key; the last admin key cannot be revoked (409)."""
    return svc.store.revoke_api_key(key_id, svc.clock())
