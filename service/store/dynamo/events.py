"""Events in the DynamoDB store: hour partitions read newest first, expiry by TTL.

A mixin of :class:`service.store.dynamo.DynamoStore`; it needs only the store's
``client`` and ``table``. Items (``T`` = the fixed-width UTC time the store uses, which
sorts like the time; ``H`` = its first 13 characters, the hour):

==================  ==================  ===========  ==================================
item                pk                  sk           attributes
==================  ==================  ===========  ==================================
event               ``EVT#<H>``         ``<T>#<id>`` doc (JSON), expires_at (TTL, epoch s);
                                                     by_kind: ``EVTRES#<resource id>`` /
                                                     ``<T>#<id>``
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
``Scan``, and the cost follows the events read plus the hours visited. A filter on one
resource id (no ``*``) queries the ``by_kind`` index instead. Name, wildcard and label
filters are applied to the items read (DynamoDB cannot index a wildcard).

Expiry: every item carries ``expires_at`` and the table's TTL deletes it (within a day
or two on AWS, never on moto). ``expire_events(now)`` moves the expiry mark forward (a
conditional write); reads skip items whose ``expires_at`` is at or before the mark, so an
expired event is never listed even before TTL removes it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
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
                "gsi3pk": f"EVTRES#{ev.resource.id}",
                "gsi3sk": _sort_key(ev.occurred, ev.id),
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
        sk_name = "sk" if pk_name == "pk" else "gsi3sk"
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
        if flt.resource is not None and "*" not in flt.resource:
            yield from self._ev_descending("gsi3pk", f"EVTRES#{flt.resource}", upper, "by_kind")
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
