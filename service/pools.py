"""Work pool operations."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from provisioners.base import provisioner_class
from service import events
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
    created = svc.store.create_pool(pool)
    _record(svc, created, None, created.paused)
    return created


def update_pool(svc: Services, name: str, body: WorkPoolUpdate) -> WorkPool:
    pool = svc.store.get_pool(name)
    changes = body.model_dump(exclude_unset=True)
    if "config" in changes:
        changes["config"] = validated_config(pool.type, changes["config"])
    updated = svc.store.update_pool(name, changes, svc.clock())
    _record(svc, updated, pool.paused, updated.paused)
    return updated


def delete_pool(svc: Services, name: str) -> None:
    """Delete the pool (see ``Store.delete_pool``) and record it."""
    pool = svc.store.get_pool(name)
    svc.store.delete_pool(name)
    _record(svc, pool, pool.paused, None)


def _record(svc: Services, pool: WorkPool, before: bool | None, after: bool | None) -> None:
    resource = events.pool_resource(pool.name, pool.type)
    now = svc.clock()
    events.record_change(
        svc.store, events.WORK_POOL, resource, now=now, before_paused=before, after_paused=after
    )
