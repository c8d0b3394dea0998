"""The DynamoDB store's low level: item encoding, times, expressions, the table's calls.

Everything here is shared by the store's parts (``keys``, ``pools``, ``deployments``,
``runs``, ``logs``, ``tasks``, ``schema``), each a mixin of :class:`_Table` composed into
``DynamoStore`` in ``__init__``; the item layout is documented there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from service.errors import StoreUnavailable
from service.store.base import (
    Store,
)

Item = dict[str, Any]

_FMT = "%Y-%m-%dT%H:%M:%S.%fZ"
_GSIS = (
    ("by_state", "gsi1"),
    ("by_deployment", "gsi2"),
    ("by_kind", "gsi3"),
    ("by_began", "gsi4"),  # schema version 2
)
_RUN_TIMES = (
    "expected_start",
    "start_time",
    "end_time",
    "heartbeat_at",
    "created_at",
    "updated_at",
)
_RUN_JSON = ("parameters", "job_variables", "result", "error", "tags", "infra")
_RETRIES = 20
#: How the store pauses between retries (tests replace it).
_sleep = time.sleep
DEFAULT_LOG_RETENTION_SECONDS = 30 * 24 * 3600

_ser = TypeSerializer()
_deser = TypeDeserializer()


def ts(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store")
    return value.astimezone(UTC).strftime(_FMT)


def from_ts(value: str) -> datetime:
    return datetime.strptime(value, _FMT).replace(tzinfo=UTC)


def _opt_ts(value: str | None) -> datetime | None:
    return None if value is None else from_ts(value)


def _enc(item: Item) -> dict[str, Any]:
    return {k: _ser.serialize(v) for k, v in item.items() if v is not None}


def _dec(raw: dict[str, Any]) -> Item:
    out = {k: _deser.deserialize(v) for k, v in raw.items()}
    return {k: int(v) if isinstance(v, Decimal) else v for k, v in out.items()}


def _paged(client: Any, kw: dict[str, Any]) -> Iterator[Item]:
    """The items of one ``Query`` (``kw``: its arguments), decoded, fetched page by page as
    consumed."""
    while True:
        resp = client.query(**kw)
        for raw in resp.get("Items", []):
            yield _dec(raw)
        last = resp.get("LastEvaluatedKey")
        if not last:
            return
        kw = {**kw, "ExclusiveStartKey": last}


def _order(value: datetime, ident: str) -> str:
    return f"{ts(value)}#{ident}"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _reasons(exc: ClientError) -> list[str]:
    return [str(r.get("Code") or "None") for r in exc.response.get("CancellationReasons", [])]


def _cancelled(exc: ClientError) -> list[str]:
    """The per-operation reasons of a cancelled transaction; any other error is re-raised."""
    reasons = _reasons(exc)
    if _code(exc) != "TransactionCanceledException" or not reasons:
        raise exc
    return reasons


class _Expr:
    """Builds expression attribute names/values with unique placeholders."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def n(self, name: str) -> str:
        key = f"#n{len(self.names)}"
        self.names[key] = name
        return key

    def v(self, value: Any) -> str:
        key = f":v{len(self.values)}"
        self.values[key] = _ser.serialize(value)
        return key

    def args(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.names:
            out["ExpressionAttributeNames"] = self.names
        if self.values:
            out["ExpressionAttributeValues"] = self.values
        return out


def _update(
    key: Item,
    *,
    set_: Item | None = None,
    remove: Iterable[str] = (),
    add: dict[str, int] | None = None,
    cond: Callable[[_Expr], str] | None = None,
) -> dict[str, Any]:
    """The parameters of one UpdateItem (or transaction ``Update``)."""
    e = _Expr()
    parts: list[str] = []
    sets, removes = [], list(remove)
    for k, val in (set_ or {}).items():
        if val is None:
            removes.append(k)
        else:
            sets.append(f"{e.n(k)} = {e.v(val)}")
    if sets:
        parts.append("SET " + ", ".join(sets))
    if removes:
        parts.append("REMOVE " + ", ".join(e.n(k) for k in removes))
    if add:
        parts.append("ADD " + ", ".join(f"{e.n(k)} {e.v(val)}" for k, val in add.items()))
    out: dict[str, Any] = {"Key": _enc(key), "UpdateExpression": " ".join(parts)}
    if cond is not None:
        out["ConditionExpression"] = cond(e)
    return out | e.args()


def _limit_ok(e: _Expr) -> str:
    """``active < concurrency_limit``, a missing counter being 0 and a missing limit none."""
    lim, act, zero = e.n("concurrency_limit"), e.n("active"), e.v(0)
    return (
        f"(attribute_not_exists({lim}) OR {act} < {lim} "
        f"OR (attribute_not_exists({act}) AND {lim} > {zero}))"
    )


def _cond(cond: Callable[[_Expr], str]) -> dict[str, Any]:
    """``ConditionExpression`` with its names/values, for a transaction ``Put``/``Delete``."""
    e = _Expr()
    return {"ConditionExpression": cond(e)} | e.args()


class _Table(Store):
    """The table and the low-level calls every part of the store makes through it:
    one client per store; items in and out through ``_enc``/``_dec``; every multi-item
    change one ``TransactWriteItems`` (``_transact``, retried on conflicts)."""

    def __init__(
        self,
        table: str,
        *,
        client: Any = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        log_retention_seconds: int = DEFAULT_LOG_RETENTION_SECONDS,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.table = table
        self.client = client or boto3.client(
            "dynamodb", region_name=region_name, endpoint_url=endpoint_url
        )
        self.log_retention_seconds = log_retention_seconds
        self._now = now
        self._seq_lock = threading.Lock()

    # -- plumbing ------------------------------------------------------------------------
    def _get(self, pk: str, sk: str) -> Item | None:
        resp = self.client.get_item(
            TableName=self.table, Key=_enc({"pk": pk, "sk": sk}), ConsistentRead=True
        )
        raw = resp.get("Item")
        return _dec(raw) if raw else None

    def _put(self, item: Item, cond: str | None = None) -> None:
        kw: dict[str, Any] = {"TableName": self.table, "Item": _enc(item)}
        if cond:
            kw["ConditionExpression"] = cond
        self.client.put_item(**kw)

    def _upd(self, params: dict[str, Any], **kw: Any) -> Item:
        resp = self.client.update_item(TableName=self.table, **params, **kw)
        return _dec(resp.get("Attributes", {}))

    def _delete(self, pk: str, sk: str) -> None:
        self.client.delete_item(TableName=self.table, Key=_enc({"pk": pk, "sk": sk}))

    def _transact(self, ops: list[dict[str, Any]]) -> None:
        """One ``TransactWriteItems``; each op is ``{"Put"|"Update"|...: params}``."""
        items = [{kind: {"TableName": self.table, **p} for kind, p in op.items()} for op in ops]
        for attempt in range(_RETRIES):
            try:
                self.client.transact_write_items(TransactItems=items)
                return
            except ClientError as exc:
                conflict = _code(exc) == "TransactionConflictException" or (
                    _code(exc) == "TransactionCanceledException"
                    and "TransactionConflict" in _reasons(exc)
                    and "ConditionalCheckFailed" not in _reasons(exc)
                )
                if not conflict or attempt == _RETRIES - 1:
                    raise
                time.sleep(0.005 * (attempt + 1))

    def _query(
        self,
        pk_name: str,
        pk: str,
        *,
        index: str | None = None,
        sk: Callable[[_Expr, str], str] | None = None,
        filt: Callable[[_Expr], str] | None = None,
        forward: bool = True,
        page: int | None = None,
        consistent: bool = False,
    ) -> Iterator[Item]:
        """Items of one partition in key order, fetched page by page as consumed."""
        kw = self._query_args(pk_name, pk, index, sk, filt, consistent)
        kw["ScanIndexForward"] = forward
        if page is not None:
            kw["Limit"] = page
        return _paged(self.client, kw)

    def _count(
        self,
        pk_name: str,
        pk: str,
        *,
        index: str | None = None,
        sk: Callable[[_Expr, str], str] | None = None,
        filt: Callable[[_Expr], str] | None = None,
        at_most: int | None = None,
    ) -> int:
        """How many items of one partition match (``Select=COUNT``: DynamoDB counts, no
        item is returned; 1 MB of items read per call), stopping once ``at_most``."""
        kw = self._query_args(pk_name, pk, index, sk, filt, False) | {"Select": "COUNT"}
        total = 0
        while at_most is None or total < at_most:
            resp = self.client.query(**kw)
            total += int(resp.get("Count", 0))
            last = resp.get("LastEvaluatedKey")
            if not last:
                break
            kw["ExclusiveStartKey"] = last
        return total if at_most is None else min(total, at_most)

    def _query_args(
        self,
        pk_name: str,
        pk: str,
        index: str | None,
        sk: Callable[[_Expr, str], str] | None,
        filt: Callable[[_Expr], str] | None,
        consistent: bool,
    ) -> dict[str, Any]:
        e = _Expr()
        key = f"{e.n(pk_name)} = {e.v(pk)}"
        if sk is not None:
            key += " AND " + sk(e, "sk" if pk_name == "pk" else pk_name[:4] + "sk")
        kw: dict[str, Any] = {"TableName": self.table, "KeyConditionExpression": key}
        if filt is not None:
            kw["FilterExpression"] = filt(e)
        kw |= e.args()
        if index is not None:
            kw["IndexName"] = index
        elif consistent:
            kw["ConsistentRead"] = True
        return kw

    def _batch_get(self, keys: Sequence[Item]) -> list[Item]:
        """The items of ``keys`` that exist (any order): BatchGetItem, 100 keys a call."""
        wanted = [_enc(k) for k in keys]
        out: list[Item] = []
        for start in range(0, len(wanted), 100):
            pending: dict[str, Any] = {
                self.table: {"Keys": wanted[start : start + 100], "ConsistentRead": True}
            }
            for attempt in range(_RETRIES):
                resp = self.client.batch_get_item(RequestItems=pending)
                out += [_dec(raw) for raw in resp.get("Responses", {}).get(self.table, [])]
                pending = resp.get("UnprocessedKeys") or {}
                if not pending:
                    break
                time.sleep(0.01 * (attempt + 1))
        return out

    def _next_ids(self, name: str, count: int) -> range:
        out = self._upd(
            _update({"pk": "SEQ", "sk": name}, add={"n": count}), ReturnValues="UPDATED_NEW"
        )
        top = int(out["n"])
        return range(top - count + 1, top + 1)

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        """BatchWriteItem in chunks of 25, retrying unprocessed items with a growing
        pause; raises ``StoreUnavailable`` if some are still unprocessed after
        ``_RETRIES`` tries (the chunks before were written)."""
        for start in range(0, len(requests), 25):
            pending = {self.table: requests[start : start + 25]}
            for attempt in range(_RETRIES):
                resp = self.client.batch_write_item(RequestItems=pending)
                pending = resp.get("UnprocessedItems") or {}
                if not pending:
                    break
                _sleep(0.01 * (attempt + 1))
            if pending:
                left = len(pending.get(self.table, []))
                raise StoreUnavailable(
                    f"DynamoDB left {left} item(s) unwritten after {_RETRIES} tries"
                )
