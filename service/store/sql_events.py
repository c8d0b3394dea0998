"""Events in the SQL store: one ``events`` row each, listed newest first by index.

A mixin of :class:`service.store.sql.SqlStore` (it uses the store's ``_write``/``_read``
transactions and dialect ``_insert``). Every filter runs in SQL: names and the resource id
by ``LIKE`` (``*`` -> ``%``), labels by the JSON column's path operators (``json_extract``
on SQLite, ``->>`` on PostgreSQL), time and the cursor on ``ix_events_occurred``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Connection, and_, delete, insert, or_, select
from sqlalchemy.exc import IntegrityError

from service.errors import AlreadyExists, WebhookNotFound
from service.event_records import (
    Event,
    EventFilter,
    EventPage,
    Webhook,
    decode_cursor,
    encode_cursor,
    like_pattern,
)
from service.store import tables as t

_E = t.events.c


def _name_clause(column: Any, pattern: str) -> ColumnElement[bool]:
    if "*" not in pattern:
        return column == pattern
    return column.like(like_pattern(pattern), escape="\\")


def _filter_clauses(flt: EventFilter, cursor: str | None) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if flt.names:
        out.append(or_(*(_name_clause(_E.name, p) for p in flt.names)))
    if flt.resource is not None:
        out.append(_name_clause(_E.resource_id, flt.resource))
    for key, value in sorted(flt.labels.items()):
        out.append(_E.labels[key].as_string() == value)
    if flt.since is not None:
        out.append(_E.occurred >= flt.since)
    if flt.until is not None:
        out.append(_E.occurred < flt.until)
    if cursor is not None:
        occurred, event_id = decode_cursor(cursor)
        out.append(or_(_E.occurred < occurred, and_(_E.occurred == occurred, _E.id < event_id)))
    return out


class SqlEventsMixin:
    """Events and webhooks for :class:`SqlStore`."""

    if TYPE_CHECKING:
        is_sqlite: bool
        _insert: Any  # the dialect's ``insert`` (``ON CONFLICT`` support)
        event_retention: timedelta | None

        def _write(self) -> AbstractContextManager[Connection]: ...

        def _read(self) -> AbstractContextManager[Connection]: ...

    def append_events(self, events: Sequence[Event]) -> None:
        if not events:
            return
        keep = self.event_retention
        rows = [
            {
                "id": ev.id,
                "occurred": ev.occurred,
                "name": ev.name,
                "resource_id": ev.resource.id,
                "labels": dict(ev.resource.labels),
                "doc": ev.model_dump(mode="json"),
                "expires_at": None if keep is None else ev.occurred + keep,
            }
            for ev in events
        ]
        with self._write() as c:  # one cached statement, executemany
            c.execute(self._insert(t.events).on_conflict_do_nothing(), rows)

    def list_events(self, flt: EventFilter, limit: int, cursor: str | None = None) -> EventPage:
        q = (
            select(_E.doc)
            .where(*_filter_clauses(flt, cursor))
            .order_by(_E.occurred.desc(), _E.id.desc())
            .limit(limit + 1)
        )
        with self._read() as c:
            docs = c.execute(q).scalars().all()
        items = [Event.model_validate(doc) for doc in docs[:limit]]
        more = len(docs) > limit
        return EventPage(items, encode_cursor(items[-1]) if more and items else None)

    def expire_events(self, now: datetime) -> int:
        with self._write() as c:
            return int(c.execute(delete(t.events).where(_E.expires_at <= now)).rowcount)

    # -- webhooks ----------------------------------------------------------------------
    def create_webhook(self, hook: Webhook) -> Webhook:
        row = hook.model_dump() | {"secret": hook.secret}
        try:
            with self._write() as c:
                c.execute(insert(t.webhooks).values(**row))
        except IntegrityError as exc:
            raise AlreadyExists("webhook", hook.name) from exc
        return hook

    def get_webhook(self, slug: str) -> Webhook:
        with self._read() as c:
            row = c.execute(select(t.webhooks).where(t.webhooks.c.slug == slug)).first()
        if row is None:
            raise WebhookNotFound(slug[:8] + "…")
        return Webhook(**row._mapping)

    def list_webhooks(self) -> list[Webhook]:
        with self._read() as c:
            rows = c.execute(select(t.webhooks).order_by(t.webhooks.c.name)).all()
        return [Webhook(**row._mapping) for row in rows]

    def delete_webhook(self, name: str) -> None:
        with self._write() as c:
            gone = c.execute(delete(t.webhooks).where(t.webhooks.c.name == name)).rowcount
        if not gone:
            raise WebhookNotFound(name)
