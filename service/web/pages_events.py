"""Events: the feed (newest first, filtered by name pattern, resource, label and time,
cursor-paged, refreshed by the same light poll as the runs list) and an event's detail.

The feed is read by the API's own ``list_events`` route function (same filters, same
checks, same ``Store.list_events``): no second way to read events.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response

from service.api.deps import ServicesDep
from service.api.events import EventPage, list_events
from service.errors import InvalidInput, NotFound
from service.models import ApiKey
from service.services import Services
from service.web.common import WebRoute
from service.web.render import page
from service.web.session import PageKey

router = APIRouter(route_class=WebRoute)
PAGE_SIZE = 50
SINCE = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}
Filter = Annotated[str, Query(max_length=300)]


class EventNotFound(NotFound):
    kind = "event"


@dataclass(frozen=True)
class EventQuery:
    """The feed's filters as the query string carries them: ``name`` is one pattern or
    several separated by commas (``*`` matches anything), ``label`` is ``key=value``."""

    name: str = ""
    resource: str = ""
    label: str = ""
    since: str = ""

    def query_string(self) -> str:
        return urlencode({k: v for k, v in asdict(self).items() if v})


def event_query(
    name: Filter = "", resource: Filter = "", label: Filter = "", since: Filter = ""
) -> EventQuery:
    return EventQuery(name.strip(), resource.strip(), label.strip(), since)


QueryDep = Annotated[EventQuery, Depends(event_query)]


async def _page(
    svc: Services, key: ApiKey, query: EventQuery, cursor: str | None, limit: int = PAGE_SIZE
) -> EventPage:
    names = [n.strip() for n in query.name.split(",") if n.strip()]
    since = SINCE.get(query.since)
    return await list_events(
        svc,
        key,
        name=names,
        resource=query.resource or None,
        label=[query.label] if query.label else [],
        since=svc.clock() - since if since else None,
        until=None,
        limit=limit,
        cursor=cursor,
    )


async def _table(
    svc: Services, key: ApiKey, query: EventQuery, cursor: str | None
) -> dict[str, Any]:
    context: dict[str, Any] = {"query": query, "qs": query.query_string(), "live": cursor is None}
    try:
        result = await _page(svc, key, query, cursor)
    except InvalidInput as exc:
        return context | {"events": [], "next_cursor": None, "error": str(exc), "live": False}
    return context | {"events": result.items, "next_cursor": result.next_cursor, "error": None}


@router.get("/events")
async def events_page(
    request: Request,
    svc: ServicesDep,
    key: PageKey,
    query: QueryDep,
    cursor: str | None = Query(default=None, max_length=500),
) -> Response:
    context = await _table(svc, key, query, cursor)
    context["since_options"] = list(SINCE)
    return page(request, "events.html", context, status_code=422 if context["error"] else 200)


@router.get("/events/table")
async def events_table(
    request: Request, svc: ServicesDep, key: PageKey, query: QueryDep
) -> Response:
    """The newest page alone: what the feed's poll fetches (one request)."""
    return page(request, "_events_table.html", await _table(svc, key, query, None))


@router.get("/events/{event_id}")
async def event_page(
    event_id: str,
    request: Request,
    svc: ServicesDep,
    key: PageKey,
    at: datetime = Query(description="When it occurred (the feed's links carry it)"),
) -> Response:
    """One event, found among those that occurred at ``at`` (events are listed by time)."""
    if at.tzinfo is None:
        raise InvalidInput("at", "needs a time zone", where="query")
    found = await list_events(
        svc,
        key,
        name=[],
        resource=None,
        label=[],
        since=at,
        until=at + timedelta(microseconds=1),
        limit=500,
        cursor=None,
    )
    event = next((e for e in found.items if e.id == event_id), None)
    if event is None:
        raise EventNotFound(event_id)
    return page(request, "event.html", {"event": event})
