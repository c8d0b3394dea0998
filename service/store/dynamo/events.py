"""Events in the DynamoDB store: hour partitions read newest first, expiry by TTL.

A mixin of :class:`service.store.dynamo.DynamoStore`; it needs only the store's
``client`` and ``table``. Items (``T`` = the fixed-width UTC time the store uses, which
sorts like the time; ``H`` = its first 13 characters, the hour):

==================  ==================  ===========  ==================================
item                pk                  sk           attributes
==================  ==================  ===========  ==================================
event               ``EVT#<H>``         ``<T>#<id>`` doc (JSON), expires_at (TTL, epoch s);
                                                     by_kind: ``EVTRES#<resource id>``,
                                                     by_state: ``EVTNAME#<name>``,
                                                     by_deployment: ``EVTDEP#<label>``,
                                                     by_began: ``EVTFLOW#<label>``
                                                     (each GSI's sort key ``<T>#<id>``)
hour with events    ``EVTHOURS``        ``<H>``      expires_at (TTL: its last event's)
expiry mark         ``META``            ``events.expired_before``  at (epoch s)
webhook             ``WEBHOOK``         name         slug, template, signature, secret,
                                                     created_at
webhook by slug     ``HOOKSLUG#<slug>`` ``HOOKSLUG`` a copy of the webhook (one read per
                                                     call of its URL)
==================  ==================  ===========  ==================================

A webhook's two items are written and deleted together in one transaction, each
conditional (a taken name or slug fails the whole write).

Listing newest first queries ``EVTHOURS`` backwards for the hours that hold events (from
``until`` or the cursor down to ``since``), then each hour's partition backwards: no
``Scan``, and the cost follows the events read plus the hours visited. A sparse filter
reads a sparse index instead, one partition per filter kind (schema version 3): one
resource id (no ``*``) the ``by_kind`` GSI, a ``deployment`` label ``by_deployment``, a
``flow`` label ``by_began``, one exact name ``by_state`` — the first of these the filter
has; so a filter on them reads only the events it lists (plus those the rest of the
filter drops), not every event in the hours it spans. Other criteria (wildcards, other
labels) are applied to the items read (DynamoDB cannot index a wildcard). Tables from
version 2 get the index attributes on their stored events by :func:`add_index_keys`.

Expiry: every item carries ``expires_at`` and the table's TTL deletes it (within a day
or two on AWS, never on moto). ``expire_events(now)`` moves the expiry mark forward (a
conditional write); reads skip items whose ``expires_at`` is at or before the mark, so an
expired event is never listed even before TTL removes it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from service.errors import AlreadyExists, WebhookNotFound
from service.event_records import (
    Event,
    EventFilter,
    EventPage,
    Webhook,
    decode_cursor,
    encode_cursor,
    matches,
)
from service.store.dynamo._table import _dec, _enc, _paged, _ser

_HOURS = "EVTHOURS"
_MARK = "events.expired_before"
#: Items a page of a DynamoDB query returns at most while listing events.
_PAGE = 200


def ts(value: datetime) -> str:
    """The store's fixed-width UTC time (as :func:`service.store.dynamo.ts`)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_ts(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _hour(stamp: str) -> str:
    return stamp[:13]


def _epoch(value: datetime) -> int:
    return math.ceil(value.timestamp())


def _sort_key(occurred: datetime, event_id: str) -> str:
    return f"{ts(occurred)}#{event_id}"


#: The sparse indexes of event items: (key attribute, GSI, partition of an event or None).
_INDEXES: tuple[tuple[str, str, Callable[[Event], str | None]], ...] = (
    ("gsi3", "by_kind", lambda e: f"EVTRES#{e.resource.id}"),
    ("gsi2", "by_deployment", lambda e: _label_key("EVTDEP#", e, "deployment")),
    ("gsi4", "by_began", lambda e: _label_key("EVTFLOW#", e, "flow")),
    ("gsi1", "by_state", lambda e: f"EVTNAME#{e.name}"),
)


def _label_key(prefix: str, event: Event, label: str) -> str | None:
    value = event.resource.labels.get(label)
    return None if not value else prefix + value


def index_keys(event: Event) -> dict[str, str]:
    """The event item's GSI key attributes (only the indexes the event has a key in)."""
    sort = _sort_key(event.occurred, event.id)
    out: dict[str, str] = {}
    for attr, _, key in _INDEXES:
        partition = key(event)
        if partition is not None:
            out |= {f"{attr}pk": partition, f"{attr}sk": sort}
    return out


def _index_for(flt: EventFilter) -> tuple[str, str, str] | None:
    """``(key attribute, partition, GSI)`` serving ``flt``, or None: walk the hours."""
    if flt.resource is not None and "*" not in flt.resource:
        return "gsi3", f"EVTRES#{flt.resource}", "by_kind"
    if flt.labels.get("deployment"):
        return "gsi2", f"EVTDEP#{flt.labels['deployment']}", "by_deployment"
    if flt.labels.get("flow"):
        return "gsi4", f"EVTFLOW#{flt.labels['flow']}", "by_began"
    if len(flt.names) == 1 and "*" not in flt.names[0]:
        return "gsi1", f"EVTNAME#{flt.names[0]}", "by_state"
    return None


def add_index_keys(table: Any) -> None:
    """Schema version 3: give every stored event item its index keys (:func:`index_keys`).
    Reads each hour partition once and rewrites its items in batches; idempotent."""
    hours = _paged(
        table.client,
        {
            "TableName": table.table,
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": _ser.serialize(_HOURS)},
        },
    )
    for hour in hours:
        items = _paged(
            table.client,
            {
                "TableName": table.table,
                "KeyConditionExpression": "pk = :p",
                "ExpressionAttributeValues": {":p": _ser.serialize(f"EVT#{hour['sk']}")},
            },
        )
        puts = [
            {
                "PutRequest": {
                    "Item": _enc(item | index_keys(Event.model_validate_json(item["doc"])))
                }
            }
            for item in items
            if "gsi1pk" not in item
        ]
        if puts:
            table._batch_write(puts)


def _upper_bound(flt: EventFilter, cursor: str | None) -> str | None:
    """The sort key every listed event's must be below (exclusive), if any."""
    bounds = []
    if cursor is not None:
        bounds.append(_sort_key(*decode_cursor(cursor)))
    if flt.until is not None:
        bounds.append(ts(flt.until))
    return min(bounds) if bounds else None


class DynamoEventsMixin:
    """Events and webhooks for :class:`DynamoStore`."""

    if TYPE_CHECKING:
        client: Any
        table: str
        event_retention: timedelta | None

        def _batch_write(self, requests: list[dict[str, Any]]) -> None: ...

    # -- writing ---------------------------------------------------------------------
    def append_events(self, events: Sequence[Event]) -> None:
        hours: dict[str, int | None] = {}
        requests = []
        for ev in events:
            stamp = ts(ev.occurred)
            expires = (
                None if self.event_retention is None else _epoch(ev.occurred + self.event_retention)
            )
            item = {
                "pk": f"EVT#{_hour(stamp)}",
                "sk": _sort_key(ev.occurred, ev.id),
                "doc": ev.model_dump_json(),
                "expires_at": expires,
                **index_keys(ev),
            }
            requests.append({"PutRequest": {"Item": _enc(item)}})
            known = hours.get(_hour(stamp), 0)
            hours[_hour(stamp)] = None if expires is None or known is None else max(known, expires)
        for hour, expires in hours.items():
            self._ev_mark_hour(hour, expires)
        self._batch_write(requests)

    def _ev_mark_hour(self, hour: str, expires: int | None) -> None:
        """Record that ``hour`` holds events; its TTL only ever moves later."""
        names = {"#x": "expires_at"}
        if expires is None:
            self.client.update_item(
                TableName=self.table,
                Key=_enc({"pk": _HOURS, "sk": hour}),
                UpdateExpression="REMOVE #x",
                ExpressionAttributeNames=names,
            )
            return
        try:
            self.client.update_item(
                TableName=self.table,
                Key=_enc({"pk": _HOURS, "sk": hour}),
                UpdateExpression="SET #x = :x",
                ConditionExpression="attribute_not_exists(pk) OR #x < :x",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={":x": _ser.serialize(expires)},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise  # else: the hour is kept as long or longer (or for good) already

    # -- reading ---------------------------------------------------------------------
    def _ev_query(self, **kw: Any) -> Iterator[dict[str, Any]]:
        return _paged(self.client, {"TableName": self.table, **kw})

    def _ev_descending(
        self, pk_name: str, pk: str, upper: str | None, index: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """One partition's items newest first, sort keys below ``upper``."""
        sk_name = pk_name[:-2] + "sk"
        values = {":p": _ser.serialize(pk)}
        cond = "#p = :p"
        if upper is not None:
            cond += " AND #s < :u"
            values[":u"] = _ser.serialize(upper)
        kw: dict[str, Any] = {
            "KeyConditionExpression": cond,
            "ExpressionAttributeNames": {"#p": pk_name, **({"#s": sk_name} if upper else {})},
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            "Limit": _PAGE,
        }
        if index is not None:
            kw["IndexName"] = index
        return self._ev_query(**kw)

    def _ev_hours(self, upper: str | None, since: datetime | None) -> Iterator[str]:
        """The hours holding events, newest first, from ``upper``'s hour to ``since``'s."""
        top = None if upper is None else _hour(upper) + "\uffff"
        low = None if since is None else _hour(ts(since))
        for item in self._ev_descending("pk", _HOURS, top):
            if low is not None and item["sk"] < low:
                return
            yield item["sk"]

    def _ev_candidates(self, flt: EventFilter, upper: str | None) -> Iterator[dict[str, Any]]:
        """Items newest first that may pass ``flt`` (index-served criteria only)."""
        index = _index_for(flt)
        if index is not None:
            attr, partition, name = index
            yield from self._ev_descending(f"{attr}pk", partition, upper, name)
            return
        for hour in self._ev_hours(upper, flt.since):
            yield from self._ev_descending("pk", f"EVT#{hour}", upper)

    def _ev_expired_before(self) -> int:
        resp = self.client.get_item(
            TableName=self.table, Key=_enc({"pk": "META", "sk": _MARK}), ConsistentRead=True
        )
        raw = resp.get("Item")
        return int(_dec(raw)["at"]) if raw else 0

    def list_events(self, flt: EventFilter, limit: int, cursor: str | None = None) -> EventPage:
        upper = _upper_bound(flt, cursor)
        floor = None if flt.since is None else ts(flt.since)
        mark = self._ev_expired_before()
        items: list[Event] = []
        for item in self._ev_candidates(flt, upper):
            if floor is not None and item["sk"] < floor:
                break
            if item.get("expires_at") is not None and int(item["expires_at"]) <= mark:
                continue
            event = Event.model_validate(json.loads(item["doc"]))
            if not matches(flt, event):
                continue
            if len(items) == limit:
                return EventPage(items, encode_cursor(items[-1]))
            items.append(event)
        return EventPage(items, None)

    # -- expiry ----------------------------------------------------------------------
    def expire_events(self, now: datetime) -> int:
        at = int(now.timestamp())
        try:
            self.client.put_item(
                TableName=self.table,
                Item=_enc({"pk": "META", "sk": _MARK, "at": at, "value": str(at)}),
                ConditionExpression="attribute_not_exists(pk) OR #a < :a",
                ExpressionAttributeNames={"#a": "at"},
                ExpressionAttributeValues={":a": _ser.serialize(at)},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise  # else: the mark is at or past ``now`` already
        return 0

    # -- webhooks ----------------------------------------------------------------------
    def create_webhook(self, hook: Webhook) -> Webhook:
        fields = {
            "name": hook.name,
            "slug": hook.slug,
            "template": hook.template,
            "signature": hook.signature,
            "secret": hook.secret,
            "created_at": ts(hook.created_at),
        }
        keys = [("WEBHOOK", hook.name), (f"HOOKSLUG#{hook.slug}", "HOOKSLUG")]
        ops = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": _enc({"pk": pk, "sk": sk, **fields}),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
            for pk, sk in keys
        ]
        try:
            self.client.transact_write_items(TransactItems=ops)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            raise AlreadyExists("webhook", hook.name) from exc
        return hook

    def _ev_hook(self, pk: str, sk: str) -> dict[str, Any] | None:
        resp = self.client.get_item(
            TableName=self.table, Key=_enc({"pk": pk, "sk": sk}), ConsistentRead=True
        )
        raw = resp.get("Item")
        return _dec(raw) if raw else None

    @staticmethod
    def _ev_webhook(item: dict[str, Any]) -> Webhook:
        return Webhook(
            name=item["name"],
            slug=item["slug"],
            template=item["template"],
            signature=item["signature"],
            secret=item.get("secret"),
            created_at=from_ts(item["created_at"]),
        )

    def get_webhook(self, slug: str) -> Webhook:
        item = self._ev_hook(f"HOOKSLUG#{slug}", "HOOKSLUG")
        if item is None:
            raise WebhookNotFound(slug[:8] + "…")
        return self._ev_webhook(item)

    def list_webhooks(self) -> list[Webhook]:
        kw = {
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": _ser.serialize("WEBHOOK")},
            "ConsistentRead": True,
        }
        return [self._ev_webhook(item) for item in self._ev_query(**kw)]

    def delete_webhook(self, name: str) -> None:
        item = self._ev_hook("WEBHOOK", name)
        if item is None:
            raise WebhookNotFound(name)
        keys = [("WEBHOOK", name), (f"HOOKSLUG#{item['slug']}", "HOOKSLUG")]
        ops = [
            {"Delete": {"TableName": self.table, "Key": _enc({"pk": pk, "sk": sk})}}
            for pk, sk in keys
        ]
        self.client.transact_write_items(TransactItems=ops)
