"""Events: what happened, to which resource, when — the records and how filters match them.

An event names what happened (``pushpool.flow-run.Failed``), the resource it happened to
(``pushpool.flow-run.<id>`` with string labels: flow, deployment, pool, tags, state), the
resources it relates to, and a JSON payload. Filters match names and resource ids with
``*`` wildcards (any run of characters, dots included) and labels by exact value.

Light on purpose (pydantic and the standard library): the store, the API, the engine and
automations all import it.
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from service.errors import InvalidInput
from service.models import BoundedDict

#: An event or resource name: dotted words (``pushpool.flow-run.Completed``).
EventName = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-/]*$")
]
ResourceId = Annotated[str, Field(min_length=1, max_length=300, pattern=r"^[^\x00-\x1f]+$")]
#: A label name: like a name (the SQL store filters on it as a JSON path).
LABEL_KEY = r"^[A-Za-z0-9][A-Za-z0-9_.:\-/]*$"
LabelKey = Annotated[str, Field(min_length=1, max_length=100, pattern=LABEL_KEY)]
LabelValue = Annotated[str, Field(max_length=1000, pattern=r"^[^\x00]*$")]
#: At most this many related resources per event.
MAX_RELATED = 20


class Resource(BaseModel):
    """A resource an event is about: an id (``pushpool.deployment.<id>``) and labels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: ResourceId
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=50)


class Event(BaseModel):
    """One event as stored and listed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=64)
    occurred: AwareDatetime
    name: EventName
    resource: Resource
    related: list[Resource] = Field(default_factory=list, max_length=MAX_RELATED)
    payload: BoundedDict = Field(default_factory=dict)


_id_lock = threading.Lock()
_last_ns = 0


def new_event_id() -> str:
    """A unique id that sorts by creation in this process (nanoseconds, then random), so
    events recorded at one ``occurred`` time list in the order they were recorded."""
    global _last_ns
    with _id_lock:
        _last_ns = max(time.time_ns(), _last_ns + 1)
        stamp = _last_ns
    return f"{stamp:016x}-{secrets.token_hex(8)}"


def new_event(
    name: str,
    resource: Resource,
    *,
    occurred: datetime,
    related: Sequence[Resource] = (),
    payload: Mapping[str, object] | None = None,
    event_id: str | None = None,
) -> Event:
    """An event with a fresh id (validated: a bad name or payload raises ``ValueError``)."""
    return Event(
        id=event_id or new_event_id(),
        occurred=occurred,
        name=name,
        resource=resource,
        related=list(related),
        payload=dict(payload or {}),
    )


Scheme = Literal["none", "github", "stripe"]


class Webhook(BaseModel):
    """A webhook as stored (see :mod:`service.webhooks`)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    slug: str
    template: str
    signature: Scheme = "none"
    #: The HMAC secret: kept to check signatures, never returned.
    secret: str | None = Field(default=None, exclude=True, repr=False)
    created_at: AwareDatetime


@dataclass(frozen=True)
class EventFilter:
    """Which events to list: every given criterion must hold.

    ``names``: any of these patterns matches the name; ``resource``: a pattern the
    primary resource id matches; ``labels``: each label of the primary resource has this
    exact value; ``since <= occurred < until``.
    """

    names: Sequence[str] = ()
    resource: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class EventPage:
    items: list[Event]
    next_cursor: str | None


@lru_cache(maxsize=1024)
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$")


def wildcard_match(pattern: str, value: str) -> bool:
    """``*`` matches any run of characters (dots too); everything else is literal."""
    if "*" not in pattern:
        return pattern == value
    return _pattern(pattern).match(value) is not None


def matches(flt: EventFilter, event: Event) -> bool:
    """Whether ``event`` passes every criterion of ``flt``."""
    if flt.names and not any(wildcard_match(p, event.name) for p in flt.names):
        return False
    if flt.resource is not None and not wildcard_match(flt.resource, event.resource.id):
        return False
    labels = event.resource.labels
    if any(labels.get(k) != v for k, v in flt.labels.items()):
        return False
    if flt.since is not None and event.occurred < flt.since:
        return False
    return flt.until is None or event.occurred < flt.until


def like_pattern(pattern: str) -> str:
    """The SQL ``LIKE`` pattern (escape character ``\\``) of a ``*`` wildcard pattern."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def encode_cursor(event: Event) -> str:
    """The cursor that continues a newest-first listing after ``event``."""
    raw = f"{event.occurred.isoformat()}|{event.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """``(occurred, id)`` of the last event of the previous page; ``InvalidInput`` if
    ``cursor`` is not one :func:`encode_cursor` made."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        occurred, event_id = raw.split("|", 1)
        value = datetime.fromisoformat(occurred)
        if value.tzinfo is None or not event_id:
            raise ValueError("naive")
        return value, event_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor", "not a cursor this server issued") from exc
