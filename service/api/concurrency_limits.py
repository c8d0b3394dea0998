"""Tag concurrency limits (API key) and the slots task runs lease against them (run token)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field

from service.api.deps import AdminKey, RunnerRunDep, ServicesDep, ViewerKey
from service.api.responses import AUTHENTICATED, PRIVILEGED, errors
from service.models import ConcurrencyLimit
from service.states import slot_holder_prefix

router = APIRouter(tags=["concurrency limits"], responses=AUTHENTICATED)
#: The runner's routes (run token): included with the runner's documented errors.
runner_router = APIRouter(tags=["concurrency limits"])

Tag = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:/-]+$")]
Holder = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]


class LimitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tag: Tag
    limit: Annotated[int, Field(ge=1, le=100_000)]


class SlotRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tags: Annotated[list[Tag], Field(min_length=1, max_length=50)]
    holder: Holder
    lease_seconds: Annotated[float, Field(ge=5, le=3600)] = 60


class SlotRelease(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tags: Annotated[list[Tag], Field(min_length=1, max_length=50)]
    holder: Holder


class SlotAnswer(BaseModel):
    acquired: bool


@router.put("/concurrency-limits", responses={**PRIVILEGED, **errors(422)})
async def put_limit(body: LimitBody, svc: ServicesDep, _: AdminKey) -> ConcurrencyLimit:
    """Create or change the limit of a tag."""
    svc.store.put_concurrency_limit(body.tag, body.limit)
    return next(
        lim for lim in svc.store.list_concurrency_limits(svc.clock()) if lim.tag == body.tag
    )


@router.get("/concurrency-limits")
async def list_limits(svc: ServicesDep, _: ViewerKey) -> list[ConcurrencyLimit]:
    return svc.store.list_concurrency_limits(svc.clock())


@router.delete(
    "/concurrency-limits/{tag}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**PRIVILEGED, **errors(404, 422)},
)
async def delete_limit(
    tag: Annotated[str, Path(max_length=100)], svc: ServicesDep, _: AdminKey
) -> Response:
    svc.store.delete_concurrency_limit(tag)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@runner_router.post("/runner/flow-runs/{run_id}/slots", responses=errors(422))
async def acquire(run: RunnerRunDep, body: SlotRequest, svc: ServicesDep) -> SlotAnswer:
    """Lease one slot of every limited tag for a task run of this flow run (all or
    nothing; asking again renews). Leases expire, so a crashed run frees its slots."""
    now = svc.clock()
    until = now + timedelta(seconds=body.lease_seconds)
    holder = slot_holder_prefix(run.id) + body.holder
    return SlotAnswer(acquired=svc.store.acquire_slots(body.tags, holder, now, until))


@runner_router.post(
    "/runner/flow-runs/{run_id}/slots/release",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(422),
)
async def release(run: RunnerRunDep, body: SlotRelease, svc: ServicesDep) -> Response:
    svc.store.release_slots(slot_holder_prefix(run.id) + body.holder, body.tags)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
