"""Work pool operations."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from provisioners.base import provisioner_class
from service.models import MAX_CONCURRENCY_LIMIT, BoundedDict, Name, Patch, Strict, WorkPool
from service.services import Services
from service.validation import check_model


class WorkPoolCreate(Strict):
    name: Name
    type: str = Field(min_length=1, max_length=50)
    config: BoundedDict = Field(default_factory=dict)
    concurrency_limit: int | None = Field(default=None, ge=0, le=MAX_CONCURRENCY_LIMIT)
    paused: bool = False


class WorkPoolUpdate(Patch):
    nullable = frozenset({"concurrency_limit"})

    config: BoundedDict | None = None
    concurrency_limit: int | None = Field(default=None, ge=0, le=MAX_CONCURRENCY_LIMIT)
    paused: bool | None = None


def validated_config(pool_type: str, config: dict[str, Any]) -> dict[str, Any]:
    model = provisioner_class(pool_type).config_model
    return check_model(model, config, "config").model_dump(mode="json", exclude_unset=True)


def create_pool(svc: Services, body: WorkPoolCreate) -> WorkPool:
    now = svc.clock()
    pool = WorkPool(
        name=body.name,
        type=body.type,
        config=validated_config(body.type, body.config),
        concurrency_limit=body.concurrency_limit,
        paused=body.paused,
        created_at=now,
        updated_at=now,
    )
    return svc.store.create_pool(pool)


def update_pool(svc: Services, name: str, body: WorkPoolUpdate) -> WorkPool:
    pool = svc.store.get_pool(name)
    changes = body.model_dump(exclude_unset=True)
    if "config" in changes:
        changes["config"] = validated_config(pool.type, changes["config"])
    return svc.store.update_pool(name, changes, svc.clock())
