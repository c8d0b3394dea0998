"""Events: list them (any key), emit them (deployer keys; flow code with its run token)."""

from __future__ import annotations

import re

from fastapi import APIRouter, Query, status
from pydantic import AwareDatetime, BaseModel

from service import events
from service.api.deps import DeployerKey, ServicesDep, ViewerKey
from service.api.responses import AUTHENTICATED, errors
from service.api.runner import RunnerRunDep
from service.errors import InvalidInput
from service.event_records import LABEL_KEY, Event, EventFilter

router = APIRouter(prefix="/events", tags=["events"], responses=AUTHENTICATED)
#: The runner's route (run token): included with the runner's documented errors.
runner_router = APIRouter(tags=["events"])


class EventPage(BaseModel):
    items: list[Event]
    next_cursor: str | None


def _labels(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not re.match(LABEL_KEY, key) or len(key) > 100:
            raise InvalidInput("label", f"{pair!r} is not label=value", where="query")
        out[key] = value
    return out


def _printable(**params: str | list[str] | None) -> None:
    """Refuse control characters in filters (no name, id or label holds them)."""
    for field, value in params.items():
        for text in [value] if isinstance(value, str) else value or []:
            if any(ord(ch) < 32 for ch in text):
                raise InvalidInput(field, "holds a control character", where="query")


@router.get("", responses=errors(422))
async def list_events(
    svc: ServicesDep,
    _: ViewerKey,
    name: list[str] = Query(
        default=[], max_length=20, description="Name patterns ('*' matches anything); any"
    ),
    resource: str | None = Query(default=None, max_length=300, description="Resource id pattern"),
    label: list[str] = Query(
        default=[], max_length=20, description="key=value on the resource's labels; all"
    ),
    since: AwareDatetime | None = Query(default=None, description="Occurred at or after this"),
    until: AwareDatetime | None = Query(default=None, description="Occurred before this"),
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = Query(default=None, max_length=500),
) -> EventPage:
    """Newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
    _printable(name=name, resource=resource, label=label, cursor=cursor)
    labels = _labels(label)
    flt = EventFilter(names=name, resource=resource, labels=labels, since=since, until=until)
    try:
        page = svc.store.list_events(flt, limit, cursor)
    except InvalidInput as exc:
        raise InvalidInput(exc.field, exc.message, where="query") from exc
    return EventPage(items=page.items, next_cursor=page.next_cursor)


@router.post("", status_code=status.HTTP_201_CREATED, responses=errors(403, 413, 422))
async def emit_event(body: events.EventIn, svc: ServicesDep, _: DeployerKey) -> Event:
    """Emit an event (a name not starting with ``pushpool.``, a resource, a payload)."""
    return events.emit(svc, body)


@runner_router.post(
    "/runner/flow-runs/{run_id}/events", status_code=status.HTTP_201_CREATED, responses=errors(422)
)
async def emit_run_event(run: RunnerRunDep, body: events.EventIn, svc: ServicesDep) -> Event:
    """An event from flow code: about the run unless it names a resource; the run is
    always related."""
    return events.emit(svc, body, run=run)
