"""The DynamoDB store: one on-demand table, three sparse GSIs, conditional writes.

Imported only when ``PUSHPOOL_DYNAMODB_TABLE`` selects it, so boto3 stays out of every
other process. One client per store. Every multi-item change is one
``TransactWriteItems``; every state change is conditional on the state (and the run's
history counter ``hist_n``, so an A->B->A change in between is noticed). Hot paths never
``Scan``: they ``Query`` a key or a GSI.

Single-table layout (``pk``/``sk`` strings; ``T`` = fixed-width ISO-8601 UTC time
``%Y-%m-%dT%H:%M:%S.%fZ``, which sorts like the time; ``J`` = JSON string):

==================  ========================  ==========  =======================================
item                pk                        sk          GSI keys / attributes
==================  ========================  ==========  =======================================
meta value          ``META``                  key         value
API key             ``APIKEY``                id          name, key_hash, created_at, revoked_at,
                                                          role (none: admin), pools J
API key by hash     ``KEYHASH#<hash>``        ``KEYHASH`` id (unique hash, lookup)
work pool           ``POOL``                  name        type, config J, concurrency_limit,
                                                          paused, active (runs in ACTIVE states),
                                                          deployments (DEPs counted_in it)
deployment          ``DEP#<id>``              ``DEP``     doc J, flow_name, name, work_pool,
                                                          paused, counted_in (= work_pool);
                                                          by_kind: ``DEPS`` / id
deployment name     ``DEPNAME#<J[flow,name]>`` ``DEPNAME`` id, created_at (unique name)
schedule            ``SCHED#<id>``            ``SCHED``   doc J, active, next_fire_at T;
                                                          by_deployment: ``SCHEDS#<dep>`` / id;
                                                          by_kind: ``SCHED`` / ``T#id``, only
                                                          while active, unpaused, cursor set
deployment counter  ``CNT#<dep id>``          ``CNT``     active, concurrency_limit (mirror)
flow run            ``RUN#<id>``              ``RUN``     run fields (J for JSON ones), hist_n;
                                                          by_state: ``STATE#<state>`` / ``T#id``
                                                          by_deployment: ``RUNDEP#<dep>`` /
                                                          ``T#id``; by_kind: ``RUNS`` / ``T#id``
                                                          (T = expected_start)
state history       ``RUN#<id>``              ``HIST#<n>`` type, name, message, timestamp
idempotency key     ``IDEM#<dep>#<key>``      ``IDEM``    run_id
teardown            ``TEARDOWN``              ``<id:020>`` run_id, work_pool, infra J, created_at
log line            ``LOG#<run id>``          ``<id:020>`` timestamp, level, message, stream,
                                                          logger, ``expires_at`` (TTL, epoch s)
log batch           ``LOGBATCH#<run id>``     ``<attempt:010>#<seq:010>`` first (id), done
log usage           ``LOGUSE#<run id>``       ``USE``     lines, bytes, dropped_lines,
                                                          dropped_bytes, marker_id
id sequence         ``SEQ``                   name        n (teardown and log ids)
==================  ========================  ==========  =======================================

GSIs (projection ALL): ``by_state`` (gsi1pk, gsi1sk), ``by_deployment`` (gsi2pk, gsi2sk),
``by_kind`` (gsi3pk, gsi3sk). Concurrency limits are enforced by the ``active`` counters
on the pool item and the deployment counter item: a claim increments them in the same
transaction as ``SCHEDULED -> PENDING`` with the condition ``active < concurrency_limit``;
every transition leaving an ACTIVE state decrements them (entering one increments).

A pool's ``deployments`` counter keeps a pool in use from being deleted without reading
every deployment: the transaction that writes a deployment item increments the counter of
the pool it names (conditional on the pool existing) and decrements that of the pool it
named before; deleting a deployment decrements it; ``delete_pool`` is one DeleteItem
conditional on both counters being 0. The deployment item records the pool it is counted
in (``counted_in``), and every write of it is conditional on that value, so two writers
never both move (or drop) the same count. Items from before the counter: a pool without
``deployments`` counts 0 (there were no deployed users then), and a deployment without
``counted_in`` is counted nowhere until it is next deployed (which counts it) — until then
its pool can be deleted under it, as before.

GSI reads are eventually consistent on the real service: a GSI only proposes candidates
(due schedules, due runs, runs to list); every write that matters re-checks the base item
in its condition, so a stale index entry costs a failed condition, never a double claim.
Multi-step maintenance (deleting a deployment with its schedules and runs) is a sequence
of idempotent, conditional single-item writes rather than one transaction (which is
limited to 100 items).

Schema versions and upgrades: the ``META`` item ``schema.version`` holds the version of
the item layout the table is at (:data:`SCHEMA_VERSION`; 1 is the layout above, as
released in 0.1.0, whose tables have no such item and are taken as 1). ``migrate`` (at
start when the store may create its table, and ``pushpool db upgrade``) brings a table
up: for each version after the stored one it runs that version's step in
``_ITEM_UPGRADES`` (idempotent and resumable: a rewrite of the items that cannot be read
as they are, conditional on each item's old shape), then moves ``schema.version`` on
with a condition on its old value, so concurrent starts apply a step at most once to
completion. A table at a newer version than this code knows raises ``SchemaError``.
Everything else is upgraded lazily: a reader takes an attribute an older item lacks as
its documented default (a pool without ``deployments`` counts 0, above), and the next
write of the item writes the new shape; no release needs a table scan to start.
"""

from __future__ import annotations

import base64
import heapq
import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import islice
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from service.errors import (
    AlreadyExists,
    ApiKeyNotFound,
    ConcurrencyLimitNotFound,
    Conflict,
    DeploymentNotFound,
    IllegalTransition,
    InvalidInput,
    LastAdminKey,
    PoolNotFound,
    RunNotFound,
    SchemaError,
)
from service.models import (
    ApiKey,
    CacheRecord,
    ConcurrencyLimit,
    Deployment,
    FlowRun,
    InfraRef,
    LogLine,
    Role,
    ScheduleRecord,
    StateRecord,
    TaskRun,
    Teardown,
    WorkPool,
)
from service.store.base import (
    LogLimits,
    Materialisation,
    Page,
    RunFilter,
    Store,
    TransitionEffects,
    cache_record_valid,
    check_pool_changes,
    fit_lines,
    log_cap_message,
    sort_task_runs,
    take_within,
)
from service.store.dynamo_task_slots import DynamoTaskSlotsMixin
from service.vocabulary import ACTIVE, StateType

Item = dict[str, Any]

_FMT = "%Y-%m-%dT%H:%M:%S.%fZ"
_GSIS = (("by_state", "gsi1"), ("by_deployment", "gsi2"), ("by_kind", "gsi3"))
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
#: The item layout this code reads and writes; see "Schema versions" above.
SCHEMA_VERSION = 1
_SCHEMA_KEY = "schema.version"
_SCHEMA_NOTES = {1: "baseline: the item layout as released in 0.1.0"}
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


def _pool_exists(e: _Expr) -> str:
    return "attribute_exists(pk)"


def _pool_count(pool: str, delta: int) -> dict[str, Any]:
    """A transaction op moving a pool's ``deployments`` counter by ``delta``.

    Conditional on the pool existing: an ``Update`` of a missing item would create a bare
    ``POOL`` item (no type, no config) that ``list_pools`` could not read. For +1 a failed
    condition means ``PoolNotFound``; for -1 it cannot fail unless items were edited by
    hand (a deployment counted in a pool keeps the pool from being deleted), and the
    caller carries on without it.
    """
    return {
        "Update": _update({"pk": "POOL", "sk": pool}, add={"deployments": delta}, cond=_pool_exists)
    }


def _revoke(now: datetime) -> dict[str, Any]:
    """``_update`` arguments marking an unrevoked API key revoked."""
    return {
        "set_": {"revoked_at": ts(now)},
        "cond": lambda e: f"attribute_exists(pk) AND attribute_not_exists({e.n('revoked_at')})",
    }


def _live_admin(e: _Expr) -> str:
    """An unrevoked admin key (an item without ``role`` predates roles: admin)."""
    role, admin = e.n("role"), e.v(Role.ADMIN.value)
    return (
        f"attribute_exists(pk) AND attribute_not_exists({e.n('revoked_at')}) "
        f"AND (attribute_not_exists({role}) OR {role} = {admin})"
    )


def _key_free(ref: Item | None) -> Callable[[_Expr], str]:
    """The condition for taking an idempotency key: nobody holds it, or it names the run
    ``ref`` read, which is gone (its delete was cut short, by a store version that deleted
    a run and its key apart) — unless another creator has taken it over meanwhile."""
    if ref is None:
        return lambda e: "attribute_not_exists(pk)"
    was = ref["run_id"]
    return lambda e: f"attribute_not_exists(pk) OR {e.n('run_id')} = {e.v(was)}"


def _dep_guard(old: Item | None) -> Callable[[_Expr], str]:
    """The condition that the deployment item is still as read (``old``, or missing) as far
    as the pool counters go: the pool it is counted in."""
    if old is None:
        return lambda e: "attribute_not_exists(pk)"
    counted = old.get("counted_in")
    if counted is None:  # written before the counter: counted nowhere
        return lambda e: f"attribute_exists(pk) AND attribute_not_exists({e.n('counted_in')})"
    return lambda e: f"{e.n('counted_in')} = {e.v(counted)}"


class DynamoStore(DynamoTaskSlotsMixin, Store):
    expires_logs = True  # each line carries ``expires_at`` (TTL); reads skip expired ones

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
        e = _Expr()
        key = f"{e.n(pk_name)} = {e.v(pk)}"
        if sk is not None:
            key += " AND " + sk(e, "sk" if pk_name == "pk" else pk_name[:4] + "sk")
        kw: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": key,
            "ScanIndexForward": forward,
        }
        if filt is not None:
            kw["FilterExpression"] = filt(e)
        kw |= e.args()
        if index is not None:
            kw["IndexName"] = index
        elif consistent:
            kw["ConsistentRead"] = True
        if page is not None:
            kw["Limit"] = page
        while True:
            resp = self.client.query(**kw)
            for raw in resp.get("Items", []):
                yield _dec(raw)
            last = resp.get("LastEvaluatedKey")
            if not last:
                return
            kw["ExclusiveStartKey"] = last

    def _next_ids(self, name: str, count: int) -> range:
        out = self._upd(
            _update({"pk": "SEQ", "sk": name}, add={"n": count}), ReturnValues="UPDATED_NEW"
        )
        top = int(out["n"])
        return range(top - count + 1, top + 1)

    # -- lifecycle -----------------------------------------------------------------------
    def migrate(self) -> None:
        try:
            self.client.describe_table(TableName=self.table)
        except ClientError as exc:
            if _code(exc) != "ResourceNotFoundException":
                raise
            self._create_table()
        ttl = self.client.describe_time_to_live(TableName=self.table)
        status = ttl.get("TimeToLiveDescription", {}).get("TimeToLiveStatus")
        if status not in ("ENABLED", "ENABLING"):
            self.client.update_time_to_live(
                TableName=self.table,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
            )
        self._upgrade_items()

    def _upgrade_items(self) -> None:
        """Run each pending step of ``_ITEM_UPGRADES``, moving ``schema.version`` on."""
        stored = self.schema_version()
        at = 1 if stored is None else int(stored)
        if at > SCHEMA_VERSION:
            raise SchemaError(stored, self.schema_head())
        for version in range(at + 1, SCHEMA_VERSION + 1):
            _ITEM_UPGRADES[version](self)
        try:
            cond = "attribute_not_exists(pk)" if stored is None else "#v = :old"
            kw = {} if stored is None else {"names": {"#v": "value"}, "values": {":old": stored}}
            self._put_meta_if(_SCHEMA_KEY, str(SCHEMA_VERSION), cond, **kw)
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise  # else: a concurrent start moved it on first

    def _put_meta_if(
        self,
        key: str,
        value: str,
        cond: str,
        *,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
        extra: Item | None = None,
    ) -> None:
        params: dict[str, Any] = {
            "TableName": self.table,
            "Item": _enc({"pk": "META", "sk": key, "value": value, **(extra or {})}),
            "ConditionExpression": cond,
        }
        if names:
            params["ExpressionAttributeNames"] = names
        if values:
            params["ExpressionAttributeValues"] = _enc(values)
        self.client.put_item(**params)

    def schema_version(self) -> str | None:
        return self.get_meta(_SCHEMA_KEY)

    def schema_head(self) -> str:
        return str(SCHEMA_VERSION)

    def schema_history(self) -> list[tuple[str, str]]:
        return [(str(v), _SCHEMA_NOTES[v]) for v in range(1, SCHEMA_VERSION + 1)]

    def take_turn(self, key: str, now: datetime, every: timedelta) -> bool:
        try:
            self._put_meta_if(
                key,
                now.isoformat(),
                "attribute_not_exists(#at) OR #at <= :cut",
                names={"#at": "at"},
                values={":cut": ts(now - every)},
                extra={"at": ts(now)},
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _create_table(self) -> None:
        attrs = ["pk", "sk"] + [f"{g}{k}" for _, g in _GSIS for k in ("pk", "sk")]
        try:
            self.client.create_table(
                TableName=self.table,
                BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in attrs],
                KeySchema=[
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                GlobalSecondaryIndexes=[
                    {
                        "IndexName": name,
                        "KeySchema": [
                            {"AttributeName": f"{g}pk", "KeyType": "HASH"},
                            {"AttributeName": f"{g}sk", "KeyType": "RANGE"},
                        ],
                        "Projection": {"ProjectionType": "ALL"},
                    }
                    for name, g in _GSIS
                ],
            )
        except ClientError as exc:
            if _code(exc) != "ResourceInUseException":  # created concurrently
                raise
        self.client.get_waiter("table_exists").wait(
            TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )

    def get_meta(self, key: str) -> str | None:
        item = self._get("META", key)
        return None if item is None else str(item["value"])

    def set_meta_if_absent(self, key: str, value: str) -> bool:
        try:
            self._put({"pk": "META", "sk": key, "value": value}, "attribute_not_exists(pk)")
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def set_meta(self, key: str, value: str) -> None:
        self._put({"pk": "META", "sk": key, "value": value})

    # -- API keys ------------------------------------------------------------------------
    @staticmethod
    def _key(item: Item) -> ApiKey:
        pools = item.get("pools")
        return ApiKey(
            id=item["sk"],
            name=item["name"],
            key_hash=item["key_hash"],
            # An item written before roles existed has none: it was all-powerful.
            role=Role(item.get("role", Role.ADMIN)),
            pools=None if pools is None else json.loads(pools),
            created_at=from_ts(item["created_at"]),
            revoked_at=_opt_ts(item.get("revoked_at")),
        )

    def create_api_key(self, key: ApiKey) -> ApiKey:
        item = {
            "pk": "APIKEY",
            "sk": key.id,
            "name": key.name,
            "key_hash": key.key_hash,
            "role": key.role.value,
            "pools": None if key.pools is None else json.dumps(key.pools),
            "created_at": ts(key.created_at),
            "revoked_at": None if key.revoked_at is None else ts(key.revoked_at),
        }
        new = "attribute_not_exists(pk)"
        try:
            self._transact(
                [
                    {"Put": {"Item": _enc(item), "ConditionExpression": new}},
                    {
                        "Put": {
                            "Item": _enc({"pk": f"KEYHASH#{key.key_hash}", "sk": "KEYHASH"})
                            | {"id": _ser.serialize(key.id)},
                            "ConditionExpression": new,
                        }
                    },
                ]
            )
        except ClientError as exc:
            if _code(exc) == "TransactionCanceledException":
                raise AlreadyExists("api key", key.id) from exc
            raise
        return key

    def find_api_key(self, key_hash: str) -> ApiKey | None:
        ref = self._get(f"KEYHASH#{key_hash}", "KEYHASH")
        if ref is None:
            return None
        item = self._get("APIKEY", ref["id"])
        if item is None or item.get("revoked_at") is not None:
            return None
        return self._key(item)

    def list_api_keys(self) -> list[ApiKey]:
        keys = [self._key(i) for i in self._query("pk", "APIKEY", consistent=True)]
        return sorted(keys, key=lambda k: k.created_at)

    def revoke_api_key(self, key_id: str, now: datetime) -> ApiKey:
        for _ in range(_RETRIES):
            item = self._get("APIKEY", key_id)
            if item is None:
                raise ApiKeyNotFound(key_id)
            key = self._key(item)
            if key.revoked_at is not None:
                return key
            ops = [{"Update": _update({"pk": "APIKEY", "sk": key_id}, **_revoke(now))}]
            if key.role == Role.ADMIN:
                ops.append({"ConditionCheck": self._another_admin(key_id)})
            try:
                self._transact(ops)
            except ClientError as exc:
                _cancelled(exc)  # a condition failed: the keys changed under us; look again
                continue
            return key.model_copy(update={"revoked_at": now})
        raise Conflict(f"api key {key_id!r} is being changed concurrently; try again")

    def _another_admin(self, key_id: str) -> dict[str, Any]:
        """A transaction check that some other admin key is live (``LastAdminKey`` if none):
        a concurrent revoke of that key conflicts with this one, so one admin stays."""
        others = [
            k
            for k in (self._key(i) for i in self._query("pk", "APIKEY", consistent=True))
            if k.role == Role.ADMIN and k.revoked_at is None and k.id != key_id
        ]
        if not others:
            raise LastAdminKey(key_id)
        return {"Key": _enc({"pk": "APIKEY", "sk": others[0].id})} | _cond(_live_admin)

    # -- work pools ----------------------------------------------------------------------
    @staticmethod
    def _pool(item: Item) -> WorkPool:
        return WorkPool(
            name=item["sk"],
            type=item["type"],
            config=json.loads(item["config"]),
            concurrency_limit=item.get("concurrency_limit"),
            paused=bool(item.get("paused", False)),
            created_at=from_ts(item["created_at"]),
            updated_at=from_ts(item["updated_at"]),
        )

    def create_pool(self, pool: WorkPool) -> WorkPool:
        item = {
            "pk": "POOL",
            "sk": pool.name,
            "type": pool.type,
            "config": json.dumps(pool.config),
            "concurrency_limit": pool.concurrency_limit,
            "paused": pool.paused,
            "active": 0,
            "deployments": 0,
            "created_at": ts(pool.created_at),
            "updated_at": ts(pool.updated_at),
        }
        try:
            self._put(item, "attribute_not_exists(pk)")
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise AlreadyExists("work pool", pool.name) from exc
            raise
        return pool

    def _pool_item(self, name: str) -> Item:
        item = self._get("POOL", name)
        if item is None:
            raise PoolNotFound(name)
        return item

    def get_pool(self, name: str) -> WorkPool:
        return self._pool(self._pool_item(name))

    def list_pools(self) -> list[WorkPool]:
        return [self._pool(i) for i in self._query("pk", "POOL", consistent=True)]

    def update_pool(self, name: str, changes: dict[str, Any], now: datetime) -> WorkPool:
        check_pool_changes(changes)  # never the counters (active, deployments) or keys
        values: Item = {"updated_at": ts(now)}
        for k, v in changes.items():
            values[k] = json.dumps(v) if k == "config" else v
        remove = [k for k, v in values.items() if v is None]
        try:
            out = self._upd(
                _update(
                    {"pk": "POOL", "sk": name},
                    set_={k: v for k, v in values.items() if v is not None},
                    remove=remove,
                    cond=lambda e: "attribute_exists(pk)",
                ),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise PoolNotFound(name) from exc
            raise
        return self._pool(out)

    def delete_pool(self, name: str) -> None:
        """One DeleteItem, conditional on no deployment counted in the pool and no run in
        an ACTIVE state in it; a refusal returns the item as checked, for the message."""
        e = _Expr()
        zero = e.v(0)
        deps, active = e.n("deployments"), e.n("active")
        # A pool written before the ``deployments`` counter has none: it counts 0, as do
        # deployments written before it (see the module docstring). There were no
        # deployed users then; a deployment counts once it is deployed again.
        cond = (
            f"attribute_exists(pk) AND (attribute_not_exists({deps}) OR {deps} = {zero}) "
            f"AND (attribute_not_exists({active}) OR {active} = {zero})"
        )
        try:
            self.client.delete_item(
                TableName=self.table,
                Key=_enc({"pk": "POOL", "sk": name}),
                ConditionExpression=cond,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **e.args(),
            )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
            raw = exc.response.get("Item")
            if not raw:
                raise PoolNotFound(name) from exc
            item = _dec(raw)
            users = int(item.get("deployments", 0))
            if users:
                raise Conflict(f"work pool {name!r} is used by {users} deployment(s)") from exc
            raise Conflict(
                f"work pool {name!r} has {item.get('active', 0)} run(s) in progress"
            ) from exc

    # -- deployments ---------------------------------------------------------------------
    @staticmethod
    def _name_key(flow_name: str, name: str) -> Item:
        return {"pk": "DEPNAME#" + json.dumps([flow_name, name]), "sk": "DEPNAME"}

    @staticmethod
    def _deployment_item(d: Deployment) -> Item:
        return {
            "pk": f"DEP#{d.id}",
            "sk": "DEP",
            "doc": d.model_dump_json(),
            "flow_name": d.flow_name,
            "name": d.name,
            "work_pool": d.work_pool,
            "counted_in": d.work_pool,
            "paused": d.paused,
            "gsi3pk": "DEPS",
            "gsi3sk": d.id,
        }

    def _deployment_items(self) -> Iterator[Item]:
        return self._query("gsi3pk", "DEPS", index="by_kind")

    def upsert_deployment(
        self, deployment: Deployment, schedules: list[ScheduleRecord]
    ) -> tuple[Deployment, bool]:
        """One transaction writes the name (on create), the deployment item, its counter
        and the pools' ``deployments`` counters: +1 on the pool it names, conditional on
        that pool existing (which is the ``PoolNotFound`` check: no read before, so a pool
        deleted meanwhile cannot be missed), -1 on the pool it was counted in before. The
        deployment item's write is conditional on the pool it was counted in (as read), so
        a concurrent replace or delete makes it read again. The schedules are written in
        the same transaction (at most 20 puts and 20 deletes: the whole stays within the
        100 operations a transaction takes); the ``SCHEDULED`` runs of schedules removed or
        deactivated are deleted after it."""
        name_key = self._name_key(deployment.flow_name, deployment.name)
        gone: set[str] = set()  # old pools found missing (hand-edited): nothing to give back
        for _ in range(_RETRIES):
            existing = self._get(name_key["pk"], name_key["sk"])
            created = existing is None
            stored = deployment
            if existing is not None:
                stored = deployment.model_copy(
                    update={"id": existing["id"], "created_at": from_ts(existing["created_at"])}
                )
            item = _enc(self._deployment_item(stored))
            counter = _update(
                {"pk": f"CNT#{stored.id}", "sk": "CNT"},
                set_={"concurrency_limit": stored.concurrency_limit},
            )
            was: str | None = None
            if created:
                ref = name_key | {"id": stored.id, "created_at": ts(stored.created_at)}
                ops: list[dict[str, Any]] = [
                    {"Put": {"Item": _enc(ref), "ConditionExpression": "attribute_not_exists(pk)"}},
                    {"Put": {"Item": item}},
                    {"Update": counter},
                ]
            else:
                old = self._deployment_doc(stored.id)
                was = None if old is None else old.get("counted_in")
                ops = [{"Put": {"Item": item} | _cond(_dep_guard(old))}, {"Update": counter}]
            new_at = len(ops)
            # Counted there already: +0, only to check that the pool still exists (an
            # Update, not a condition check op, which would need another IAM action).
            ops.append(_pool_count(stored.work_pool, 0 if was == stored.work_pool else +1))
            if was is not None and was != stored.work_pool and was not in gone:
                ops.append(_pool_count(was, -1))
            schedule_ops, stopped = self._schedule_ops(stored, schedules)
            ops += schedule_ops  # last: the reasons' indices above stay as they are
            try:
                self._transact(ops)
            except ClientError as exc:
                reasons = _cancelled(exc)
                if reasons[new_at] == "ConditionalCheckFailed":
                    raise PoolNotFound(stored.work_pool) from exc
                if reasons[new_at + 1 :] and reasons[new_at + 1] == "ConditionalCheckFailed":
                    assert was is not None
                    gone.add(was)
                    continue
                if reasons[0] != "None":
                    continue  # the name or the item changed meanwhile: read again
                raise
            if stopped:
                self._delete_scheduled_runs(stored.id, schedule_ids=stopped)
            return stored, created
        raise Conflict(f"deployment {deployment.flow_name}/{deployment.name} is contended")

    @staticmethod
    def _schedule_item(
        rec: ScheduleRecord, deployment: Deployment, cursor: datetime | None
    ) -> Item:
        item: Item = {
            "pk": f"SCHED#{rec.id}",
            "sk": "SCHED",
            "gsi2pk": f"SCHEDS#{deployment.id}",
            "gsi2sk": rec.id,
            "id": rec.id,
            "deployment_id": deployment.id,
            "doc": rec.schedule.model_dump_json(),
            "active": rec.active,
            "next_fire_at": None if cursor is None else ts(cursor),
        }
        if rec.active and cursor is not None and not deployment.paused:
            item |= {"gsi3pk": "SCHED", "gsi3sk": _order(cursor, rec.id)}
        return item

    def _schedule_items(self, deployment_id: str) -> list[Item]:
        return list(self._query("gsi2pk", f"SCHEDS#{deployment_id}", index="by_deployment"))

    def _schedule_ops(
        self, deployment: Deployment, records: list[ScheduleRecord]
    ) -> tuple[list[dict[str, Any]], set[str]]:
        """The transaction ops that make the deployment's schedules ``records`` (an
        unchanged active schedule keeps its cursor), and the ids of the schedules whose
        ``SCHEDULED`` runs must go (removed or deactivated)."""
        old = {i["id"]: i for i in self._schedule_items(deployment.id)}
        new_ids = {r.id for r in records}
        gone = {sid for sid in old if sid not in new_ids}
        gone |= {r.id for r in records if r.id in old and old[r.id]["active"] and not r.active}
        ops: list[dict[str, Any]] = [
            {"Delete": {"Key": _enc({"pk": f"SCHED#{sid}", "sk": "SCHED"})}}
            for sid in sorted(old)
            if sid not in new_ids
        ]
        for r in records:
            cursor: datetime | None = r.next_fire_at if r.active else None
            if r.id in old and r.active and old[r.id]["active"]:
                stored = old[r.id].get("next_fire_at")
                cursor = None if stored is None else from_ts(stored)
            ops.append({"Put": {"Item": _enc(self._schedule_item(r, deployment, cursor))}})
        return ops, gone

    def _delete_scheduled_runs(
        self, deployment_id: str, *, schedule_ids: set[str] | None = None, auto_only: bool = True
    ) -> int:
        n = 0
        for item in self._query(
            "gsi2pk",
            f"RUNDEP#{deployment_id}",
            index="by_deployment",
            filt=lambda e: f"{e.n('state_type')} = {e.v('SCHEDULED')}",
        ):
            if auto_only and not item.get("auto_scheduled"):
                continue
            if schedule_ids is not None and item.get("schedule_id") not in schedule_ids:
                continue
            n += self._delete_run(item)
        return n

    def _delete_run(self, item: Item) -> int:
        """Delete a ``SCHEDULED`` run with its idempotency key (one transaction: the key
        is free again exactly when the run is gone), then its history; 1 if deleted."""
        run_id = item["id"]
        ops: list[dict[str, Any]] = [
            {
                "Delete": {"Key": _enc({"pk": f"RUN#{run_id}", "sk": "RUN"})}
                | _cond(lambda e: f"{e.n('state_type')} = {e.v('SCHEDULED')}")
            }
        ]
        if item.get("idempotency_key") is not None:
            key = f"IDEM#{item.get('deployment_id')}#{item['idempotency_key']}"
            ops.append({"Delete": {"Key": _enc({"pk": key, "sk": "IDEM"})}})
        try:
            self._transact(ops)
        except ClientError as exc:
            if _cancelled(exc)[0] == "ConditionalCheckFailed":
                return 0  # claimed or moved meanwhile: it stays
            raise
        for h in self._query("pk", f"RUN#{run_id}", consistent=True):
            self._delete(h["pk"], h["sk"])
        self.delete_logs(run_ids=[run_id])
        return 1

    def _deployment_doc(self, deployment_id: str) -> Item | None:
        return self._get(f"DEP#{deployment_id}", "DEP")

    def get_deployment(self, deployment_id: str) -> Deployment:
        item = self._deployment_doc(deployment_id)
        if item is None:
            raise DeploymentNotFound(deployment_id)
        return Deployment.model_validate_json(item["doc"])

    def find_deployment(self, flow_name: str, name: str) -> Deployment:
        key = self._name_key(flow_name, name)
        ref = self._get(key["pk"], key["sk"])
        item = None if ref is None else self._deployment_doc(ref["id"])
        if item is None:
            raise DeploymentNotFound(f"{flow_name}/{name}")
        return Deployment.model_validate_json(item["doc"])

    def list_deployments(self, *, work_pool: str | None = None) -> list[Deployment]:
        items = [
            i for i in self._deployment_items() if work_pool is None or i["work_pool"] == work_pool
        ]
        items.sort(key=lambda i: (i["flow_name"], i["name"]))
        return [Deployment.model_validate_json(i["doc"]) for i in items]

    def delete_deployment(self, deployment_id: str) -> None:
        """The deployment, its name and its schedules go in one transaction (a deployment
        has at most 20 schedules, well inside the 100 items a transaction takes), so no
        cut-short delete leaves a schedule firing for a deployment that is gone. Its
        ``SCHEDULED`` runs are deleted after, each conditionally; any a cut-short delete
        leaves still end: their runner finds no deployment and the run fails.

        The same transaction gives back the deployment's count on the pool it is counted
        in, conditional on the pool existing (an ``Update`` would otherwise create a bare
        pool item). That pool cannot have been deleted while the count held it, so the
        condition fails only for items edited by hand; the delete then goes ahead without
        it rather than leaving a deployment nobody can delete."""
        skip_pool = False
        for _ in range(_RETRIES):
            old = self._deployment_doc(deployment_id)
            if old is None:
                raise DeploymentNotFound(deployment_id)
            counted = old.get("counted_in")
            ops: list[dict[str, Any]] = [
                {
                    "Delete": {"Key": _enc({"pk": f"DEP#{deployment_id}", "sk": "DEP"})}
                    | _cond(_dep_guard(old))
                },
                {"Delete": {"Key": _enc(self._name_key(old["flow_name"], old["name"]))}},
                # Runs left behind no longer count against a deployment limit.
                {
                    "Update": _update(
                        {"pk": f"CNT#{deployment_id}", "sk": "CNT"}, remove=["concurrency_limit"]
                    )
                },
            ]
            pool_at: int | None = None
            if counted is not None and not skip_pool:
                pool_at = len(ops)
                ops.append(_pool_count(counted, -1))
            ops += [
                {"Delete": {"Key": _enc({"pk": s["pk"], "sk": s["sk"]})}}
                for s in self._schedule_items(deployment_id)
            ]
            try:
                self._transact(ops)
            except ClientError as exc:
                reasons = _cancelled(exc)
                if reasons[0] != "None":
                    continue  # deleted or moved to another pool meanwhile: read again
                if pool_at is not None and reasons[pool_at] == "ConditionalCheckFailed":
                    skip_pool = True
                    continue
                raise
            break
        else:
            raise Conflict(f"deployment {deployment_id} is contended")
        self._delete_scheduled_runs(deployment_id, auto_only=False)
        # The deployment's logs go with it (its other runs stay, as records).
        runs = self._query("gsi2pk", f"RUNDEP#{deployment_id}", index="by_deployment")
        self.delete_logs(run_ids=[item["id"] for item in runs])

    def get_schedules(self, deployment_id: str) -> list[ScheduleRecord]:
        return [self._schedule(i) for i in self._schedule_items(deployment_id)]

    @staticmethod
    def _schedule(item: Item) -> ScheduleRecord:
        return ScheduleRecord(
            id=item["id"],
            deployment_id=item["deployment_id"],
            schedule=json.loads(item["doc"]),
            next_fire_at=_opt_ts(item.get("next_fire_at")),
            active=bool(item["active"]),
        )

    # -- the tick ------------------------------------------------------------------------
    def due_schedules(self, until: datetime, limit: int) -> list[tuple[ScheduleRecord, Deployment]]:
        if limit <= 0:
            return []
        bound = ts(until) + "$"  # '#' < '$': every sort key at or before ``until``
        items = list(
            islice(
                self._query(
                    "gsi3pk",
                    "SCHED",
                    index="by_kind",
                    sk=lambda e, k: f"{e.n(k)} < {e.v(bound)}",
                    page=limit,
                ),
                limit,
            )
        )
        deps = self._deployments_by_id({i["deployment_id"] for i in items})
        found: list[tuple[ScheduleRecord, Deployment]] = []
        for item in items:
            dep = deps.get(item["deployment_id"])
            if dep is None:
                # A schedule outliving its deployment (written by a version of this store
                # that deleted them one by one) would sit at the head of the index for
                # ever, taking a due slot each tick: drop it.
                self._delete(item["pk"], item["sk"])
            elif not dep.paused and item["active"]:
                found.append((self._schedule(item), dep))
        return found

    def _deployments_by_id(self, ids: Iterable[str]) -> dict[str, Deployment]:
        """BatchGetItem, 100 keys a call."""
        wanted = [_enc({"pk": f"DEP#{i}", "sk": "DEP"}) for i in sorted(ids)]
        out: dict[str, Deployment] = {}
        for start in range(0, len(wanted), 100):
            pending: dict[str, Any] = {
                self.table: {"Keys": wanted[start : start + 100], "ConsistentRead": True}
            }
            for attempt in range(_RETRIES):
                resp = self.client.batch_get_item(RequestItems=pending)
                for raw in resp.get("Responses", {}).get(self.table, []):
                    d = Deployment.model_validate_json(_dec(raw)["doc"])
                    out[d.id] = d
                pending = resp.get("UnprocessedKeys") or {}
                if not pending:
                    break
                time.sleep(0.01 * (attempt + 1))
        return out

    def materialise(self, batch: Sequence[Materialisation]) -> int:
        created = 0
        for m in batch:
            for run in m.runs:
                created += self._insert_run(run)
        for m in batch:
            if m.next_fire_at is not None:
                self._move_cursor(m.schedule_id, m.next_fire_at)
        return created

    def _insert_run(self, run: FlowRun, extra: list[dict[str, Any]] | None = None) -> int:
        """Create the run (conditional on its id) with its first history entry."""
        ops = [*(extra or [])]
        ops.append(
            {
                "Put": {
                    "Item": _enc(self._run_item(run)),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        )
        ops.append({"Put": {"Item": _enc(self._history_item(run.id, 1, run.state))}})
        if run.state.type in ACTIVE:
            ops += self._counter_ops(run, +1)
        try:
            self._transact(ops)
        except ClientError as exc:
            if _code(exc) == "TransactionCanceledException":
                reasons = _reasons(exc)
                if len(reasons) > len(extra or []) and reasons[len(extra or [])] != "None":
                    return 0
            raise
        return 1

    def _move_cursor(self, schedule_id: str, at: datetime) -> None:
        """One conditional UpdateItem. ``gsi3sk`` is always set: without ``gsi3pk`` (inactive
        or paused) the schedule stays out of the due index all the same."""
        set_: Item = {"next_fire_at": ts(at), "gsi3sk": _order(at, schedule_id)}

        def cond(e: _Expr) -> str:
            nf = e.n("next_fire_at")
            return (
                f"attribute_exists(pk) AND {e.n('active')} = {e.v(True)} AND "
                f"(attribute_not_exists({nf}) OR {nf} < {e.v(ts(at))})"
            )

        try:
            self._upd(_update({"pk": f"SCHED#{schedule_id}", "sk": "SCHED"}, set_=set_, cond=cond))
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise

    # -- runs ----------------------------------------------------------------------------
    @staticmethod
    def _run_item(run: FlowRun, hist_n: int = 1) -> Item:
        data = run.model_dump(mode="json", exclude={"state"})
        item: Item = {"pk": f"RUN#{run.id}", "sk": "RUN", "hist_n": hist_n}
        for k, v in data.items():
            if k in _RUN_TIMES:
                item[k] = None if getattr(run, k) is None else ts(getattr(run, k))
            elif k in _RUN_JSON:
                item[k] = None if v is None else json.dumps(v)
            else:
                item[k] = v
        order = _order(run.expected_start, run.id)
        item |= {
            "token_hash": run.token_hash,
            "state_type": run.state.type.value,
            "state_name": run.state.name,
            "state_message": run.state.message,
            "state_timestamp": ts(run.state.timestamp),
            "gsi1pk": f"STATE#{run.state.type.value}",
            "gsi1sk": order,
            "gsi2pk": None if run.deployment_id is None else f"RUNDEP#{run.deployment_id}",
            "gsi2sk": order,
            "gsi3pk": "RUNS",
            "gsi3sk": order,
        }
        return item

    @staticmethod
    def _history_item(run_id: str, n: int, state: StateRecord) -> Item:
        return {
            "pk": f"RUN#{run_id}",
            "sk": f"HIST#{n:010d}",
            "type": state.type.value,
            "name": state.name,
            "message": state.message,
            "timestamp": ts(state.timestamp),
        }

    @staticmethod
    def _run(item: Item) -> FlowRun:
        data: Item = {}
        for k in FlowRun.model_fields:
            if k == "state":
                continue
            v = item.get(k)
            if v is not None and k in _RUN_TIMES:
                v = from_ts(v)
            elif v is not None and k in _RUN_JSON:
                v = json.loads(v)
            if v is not None:
                data[k] = v
        data.setdefault("deployment_id", None)
        data["state"] = StateRecord(
            type=StateType(item["state_type"]),
            name=item["state_name"],
            message=item.get("state_message"),
            timestamp=from_ts(item["state_timestamp"]),
        )
        return FlowRun.model_validate(data)

    @staticmethod
    def _counter_ops(run: FlowRun | Item, delta: int) -> list[dict[str, Any]]:
        """Unconditional changes of the ``active`` counters a run counts against."""
        pool = run.work_pool if isinstance(run, FlowRun) else run["work_pool"]
        dep = run.deployment_id if isinstance(run, FlowRun) else run.get("deployment_id")
        ops = [{"Update": _update({"pk": "POOL", "sk": pool}, add={"active": delta})}]
        if dep is not None:
            ops.append(
                {"Update": _update({"pk": f"CNT#{dep}", "sk": "CNT"}, add={"active": delta})}
            )
        return ops

    def _run_item_or_raise(self, run_id: str) -> Item:
        item = self._get(f"RUN#{run_id}", "RUN")
        if item is None:
            raise RunNotFound(run_id)
        return item

    def create_run(self, run: FlowRun) -> tuple[FlowRun, bool]:
        if run.idempotency_key is None:
            if not self._insert_run(run):
                raise AlreadyExists("flow run", run.id)
            return run, True
        idem = {
            "pk": f"IDEM#{run.deployment_id}#{run.idempotency_key}",
            "sk": "IDEM",
            "run_id": run.id,
        }
        for _ in range(_RETRIES):
            ref = self._get(idem["pk"], "IDEM")
            if ref is not None:
                existing = self._get(f"RUN#{ref['run_id']}", "RUN")
                if existing is not None:
                    return self._run(existing), False
            guard = {"Put": {"Item": _enc(idem)} | _cond(_key_free(ref))}
            try:
                if not self._insert_run(run, [guard]):
                    raise AlreadyExists("flow run", run.id)
                return run, True
            except ClientError as exc:
                if _code(exc) != "TransactionCanceledException":
                    raise
                time.sleep(0.002)  # the key was taken meanwhile: return that run
        raise Conflict(f"idempotency key {run.idempotency_key!r} is contended")

    def get_run(self, run_id: str) -> FlowRun:
        return self._run(self._run_item_or_raise(run_id))

    def list_runs(self, flt: RunFilter, limit: int, cursor: str | None = None) -> Page:
        after = None if cursor is None else _decode_cursor(cursor)
        states = [s.value for s in flt.states]
        if flt.deployment_id is not None:
            sources = [("gsi2pk", f"RUNDEP#{flt.deployment_id}", "by_deployment")]
        elif states:
            sources = [("gsi1pk", f"STATE#{s}", "by_state") for s in dict.fromkeys(states)]
        else:
            sources = [("gsi3pk", "RUNS", "by_kind")]

        def filt(e: _Expr) -> str:
            parts = []
            if flt.work_pool is not None:
                parts.append(f"{e.n('work_pool')} = {e.v(flt.work_pool)}")
            if states and flt.deployment_id is not None:
                parts.append(f"{e.n('state_type')} IN ({', '.join(e.v(s) for s in states)})")
            parts += _run_filter_parts(e, flt)
            return " AND ".join(parts)

        has_filter = bool(filt(_Expr()))
        floor = None if flt.since is None else _order(flt.since, "")
        ceiling = None if flt.before is None else _order(flt.before, "")
        iters = [
            self._query(
                pk_name,
                pk,
                index=index,
                sk=_run_sk_condition(flt.ascending, after, floor, ceiling),
                filt=filt if has_filter else None,
                forward=flt.ascending,
                page=None if has_filter else limit + 1,
            )
            for pk_name, pk, index in sources
        ]
        sk_name = sources[0][0][:4] + "sk"
        merged = heapq.merge(*iters, key=lambda i: i[sk_name], reverse=not flt.ascending)
        rows = []
        for item in merged:
            if floor is not None and item[sk_name] < floor:
                break  # newest first: everything from here on started before `since`
            if ceiling is not None and item[sk_name] >= ceiling:
                break  # oldest first: everything from here on starts at or after `before`
            rows.append(item)
            if len(rows) > limit:
                break
        items = [self._run(i) for i in rows[:limit]]
        more = len(rows) > limit
        return Page(items, _encode_cursor(items[-1]) if more and items else None)

    def state_history(self, run_id: str) -> list[StateRecord]:
        self._run_item_or_raise(run_id)
        return [
            StateRecord(
                type=StateType(h["type"]),
                name=h["name"],
                message=h.get("message"),
                timestamp=from_ts(h["timestamp"]),
            )
            for h in self._query(
                "pk",
                f"RUN#{run_id}",
                sk=lambda e, k: f"begins_with({e.n(k)}, {e.v('HIST#')})",
                consistent=True,
            )
        ]

    def claim_due_runs(
        self,
        now: datetime,
        limit: int,
        issue_token: Callable[[str], str],
        *,
        run_ids: Iterable[str] | None = None,
    ) -> list[FlowRun]:
        if limit <= 0:
            return []
        candidates: Iterable[Item]
        if run_ids is None:
            candidates = self._query(
                "gsi1pk",
                "STATE#SCHEDULED",
                index="by_state",
                sk=lambda e, k: f"{e.n(k)} < {e.v(ts(now) + '$')}",
                page=max(limit * 4, 25),
            )
        else:
            found = [self._get(f"RUN#{i}", "RUN") for i in dict.fromkeys(run_ids)]
            candidates = sorted(
                (
                    i
                    for i in found
                    if i is not None
                    and i["state_type"] == "SCHEDULED"
                    and from_ts(i["expected_start"]) <= now
                ),
                key=lambda i: i["gsi1sk"],
            )
        pools: dict[str, Item | None] = {}
        full_pools: set[str] = set()
        full_deps: set[str] = set()
        claimed: list[FlowRun] = []
        for item in candidates:
            if len(claimed) >= limit:
                break
            pool_name, dep = item["work_pool"], item.get("deployment_id")
            if pool_name not in pools:
                pools[pool_name] = self._get("POOL", pool_name)
            pool = pools[pool_name]
            if pool is None or pool.get("paused") or pool_name in full_pools or dep in full_deps:
                continue
            result = self._claim_one(item, now, issue_token)
            if isinstance(result, FlowRun):
                claimed.append(result)
            elif result == "pool":
                full_pools.add(pool_name)
            elif result == "deployment" and dep is not None:
                full_deps.add(dep)
        return claimed

    def _claim_one(
        self, item: Item, now: datetime, issue_token: Callable[[str], str]
    ) -> FlowRun | str:
        """Claim one run; the run, or why not: ``lost``, ``pool``, ``deployment``."""
        run_id, n = item["id"], int(item["hist_n"])
        token = issue_token(run_id)
        state = StateRecord(type=StateType.PENDING, name="Pending", timestamp=now)
        stamp = ts(now)

        def run_cond(e: _Expr) -> str:
            return f"{e.n('state_type')} = {e.v('SCHEDULED')} AND {e.n('hist_n')} = {e.v(n)}"

        def pool_cond(e: _Expr) -> str:
            return f"attribute_exists(pk) AND {e.n('paused')} = {e.v(False)} AND {_limit_ok(e)}"

        ops: list[dict[str, Any]] = [
            {
                "Update": _update(
                    {"pk": f"RUN#{run_id}", "sk": "RUN"},
                    set_={
                        "state_type": "PENDING",
                        "state_name": "Pending",
                        "state_timestamp": stamp,
                        "updated_at": stamp,
                        "token_hash": token,
                        "hist_n": n + 1,
                        "gsi1pk": "STATE#PENDING",
                    },
                    remove=["state_message", "infra"],
                    add={"run_count": 1},
                    cond=run_cond,
                )
            },
            {"Put": {"Item": _enc(self._history_item(run_id, n + 1, state))}},
            {
                "Update": _update(
                    {"pk": "POOL", "sk": item["work_pool"]}, add={"active": 1}, cond=pool_cond
                )
            },
        ]
        if item.get("deployment_id") is not None:
            ops.append(
                {
                    "Update": _update(
                        {"pk": f"CNT#{item['deployment_id']}", "sk": "CNT"},
                        add={"active": 1},
                        cond=_limit_ok,
                    )
                }
            )
        try:
            self._transact(ops)
        except ClientError as exc:
            reasons = _cancelled(exc)
            if reasons[0] != "None":
                return "lost"
            if reasons[2] != "None":
                return "pool"
            if len(reasons) > 3 and reasons[3] != "None":
                return "deployment"
            return "lost"
        claimed = dict(item)
        claimed.update(
            state_type="PENDING",
            state_name="Pending",
            state_timestamp=stamp,
            updated_at=stamp,
            token_hash=token,
            run_count=int(item.get("run_count", 0)) + 1,
        )
        claimed.pop("state_message", None)
        claimed.pop("infra", None)
        return self._run(claimed)

    def transition(
        self,
        run_id: str,
        expected: StateType,
        state: StateRecord,
        effects: TransitionEffects | None = None,
    ) -> FlowRun:
        effects = effects or TransitionEffects()
        for _ in range(_RETRIES):
            item = self._run_item_or_raise(run_id)
            current = StateType(item["state_type"])
            if current != expected:
                raise IllegalTransition(run_id, current.value, state.type.value)
            n = int(item["hist_n"])
            set_: Item = {
                "state_type": state.type.value,
                "state_name": state.name,
                "state_message": state.message,
                "state_timestamp": ts(state.timestamp),
                "updated_at": ts(state.timestamp),
                "hist_n": n + 1,
                "gsi1pk": f"STATE#{state.type.value}",
            }
            for key, value in effects.fields.items():
                if isinstance(value, InfraRef):
                    value = value.model_dump(mode="json")
                if value is not None and key in _RUN_TIMES:
                    value = ts(value)
                elif value is not None and key in _RUN_JSON:
                    value = json.dumps(value)
                set_[key] = value
                if key == "expected_start":
                    order = _order(effects.fields[key], run_id)
                    set_["gsi1sk"] = order
                    set_["gsi3sk"] = order
                    if item.get("gsi2pk"):
                        set_["gsi2sk"] = order
            if effects.revoke_token:
                set_["token_hash"] = None

            def cond(e: _Expr, exp: str = expected.value, n: int = n) -> str:
                return f"{e.n('state_type')} = {e.v(exp)} AND {e.n('hist_n')} = {e.v(n)}"

            ops: list[dict[str, Any]] = [
                {"Update": _update({"pk": f"RUN#{run_id}", "sk": "RUN"}, set_=set_, cond=cond)},
                {"Put": {"Item": _enc(self._history_item(run_id, n + 1, state))}},
            ]
            was, will = expected in ACTIVE, state.type in ACTIVE
            if was != will:
                ops += self._counter_ops(item, -1 if was else +1)
            if effects.teardown and item.get("infra") is not None:
                (tid,) = self._next_ids("teardown", 1)
                ops.append(
                    {
                        "Put": {
                            "Item": _enc(
                                {
                                    "pk": "TEARDOWN",
                                    "sk": f"{tid:020d}",
                                    "id": tid,
                                    "run_id": run_id,
                                    "work_pool": item["work_pool"],
                                    "infra": item["infra"],
                                    "created_at": ts(state.timestamp),
                                }
                            )
                        }
                    }
                )
            try:
                self._transact(ops)
            except ClientError as exc:
                if _code(exc) == "TransactionCanceledException" and _reasons(exc)[0] != "None":
                    continue  # changed meanwhile: re-read (raises if the state moved)
                raise
            return self.get_run(run_id)
        item = self._run_item_or_raise(run_id)
        raise IllegalTransition(run_id, item["state_type"], state.type.value)

    def _guarded_update(
        self, run_id: str, expected: StateType | str, values: Item, field: str = "state_type"
    ) -> bool:
        """Set ``values`` on the run if its ``field`` is ``expected`` (the state, or
        another attribute's value); ``False`` if it is not."""
        value = expected.value if isinstance(expected, StateType) else expected
        try:
            self._upd(
                _update(
                    {"pk": f"RUN#{run_id}", "sk": "RUN"},
                    set_=values,
                    cond=lambda e: f"{e.n(field)} = {e.v(value)}",
                )
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def set_infra(self, run_id: str, expected: StateType, infra: InfraRef) -> bool:
        return self._guarded_update(
            run_id, expected, {"infra": json.dumps(infra.model_dump(mode="json"))}
        )

    def set_token(self, run_id: str, expected: StateType, token_hash: str) -> bool:
        return self._guarded_update(run_id, expected, {"token_hash": token_hash})

    def replace_token(self, run_id: str, old_hash: str, new_hash: str) -> bool:
        return self._guarded_update(run_id, old_hash, {"token_hash": new_hash}, "token_hash")

    def record_heartbeat(self, run_id: str, now: datetime) -> None:
        try:
            self._upd(
                _update(
                    {"pk": f"RUN#{run_id}", "sk": "RUN"},
                    set_={"heartbeat_at": ts(now)},
                    cond=lambda e: "attribute_exists(pk)",
                )
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise RunNotFound(run_id) from exc
            raise

    def runs_in_states(
        self,
        states: Sequence[StateType],
        limit: int,
        *,
        before: datetime | None = None,
        since: datetime | None = None,
        auto_scheduled: bool | None = None,
        deployment_id: str | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[FlowRun]:
        def sk(e: _Expr, k: str) -> str:
            if after is not None:  # the index's sort key is (expected_start, id) already
                return f"{e.n(k)} > {e.v(_order(*after))}"
            if since is not None and before is not None:
                return f"{e.n(k)} BETWEEN {e.v(ts(since))} AND {e.v(ts(before))}"
            if before is not None:
                return f"{e.n(k)} < {e.v(ts(before))}"
            assert since is not None
            return f"{e.n(k)} >= {e.v(ts(since))}"

        def filt(e: _Expr) -> str:
            parts = []
            if auto_scheduled is not None:
                parts.append(f"{e.n('auto_scheduled')} = {e.v(auto_scheduled)}")
            if deployment_id is not None:
                parts.append(f"{e.n('deployment_id')} = {e.v(deployment_id)}")
            return " AND ".join(parts)

        has_filter = auto_scheduled is not None or deployment_id is not None
        ranged = before is not None or since is not None or after is not None
        iters = [
            self._query(
                "gsi1pk",
                f"STATE#{s.value}",
                index="by_state",
                sk=sk if ranged else None,
                filt=filt if has_filter else None,
                page=None if has_filter else limit,
            )
            for s in dict.fromkeys(states)
        ]
        out: list[FlowRun] = []
        for item in heapq.merge(*iters, key=lambda i: i["gsi1sk"]):
            if before is not None and item["gsi1sk"] >= ts(before):
                break  # BETWEEN is inclusive, ``before`` is not; the rest are later still
            out.append(self._run(item))
            if len(out) >= limit:
                break
        return out

    def reset_schedules(self, deployment_id: str, cursors: dict[str, datetime | None]) -> int:
        n = self._delete_scheduled_runs(deployment_id)
        doc = self._deployment_doc(deployment_id)
        dep = None if doc is None else Deployment.model_validate_json(doc["doc"])
        for item in self._schedule_items(deployment_id):
            if item["id"] not in cursors:
                continue
            cursor = cursors[item["id"]]
            indexed = cursor is not None and item["active"] and dep is not None and not dep.paused
            self._upd(
                _update(
                    {"pk": item["pk"], "sk": item["sk"]},
                    set_={
                        "next_fire_at": None if cursor is None else ts(cursor),
                        "gsi3pk": "SCHED" if indexed else None,
                        "gsi3sk": _order(cursor, item["id"]) if indexed and cursor else None,
                    },
                )
            )
        return n

    def next_scheduled_start(self, after: datetime) -> datetime | None:
        bound = ts(after) + "$"
        for item in self._query(
            "gsi1pk",
            "STATE#SCHEDULED",
            index="by_state",
            sk=lambda e, k: f"{e.n(k)} > {e.v(bound)}",
            page=1,
        ):
            return from_ts(item["expected_start"])
        return None

    # -- teardown queue ------------------------------------------------------------------
    def pending_teardowns(self, limit: int) -> list[Teardown]:
        out = []
        for item in self._query("pk", "TEARDOWN", page=limit, consistent=True):
            out.append(
                Teardown(
                    id=item["id"],
                    run_id=item["run_id"],
                    work_pool=item["work_pool"],
                    infra=json.loads(item["infra"]),
                    created_at=from_ts(item["created_at"]),
                )
            )
            if len(out) >= limit:
                break
        return out

    def finish_teardown(self, teardown_id: int) -> None:
        self._delete("TEARDOWN", f"{teardown_id:020d}")

    # -- logs ----------------------------------------------------------------------------
    # A runner's batch is recorded by a ``LOGBATCH#<run>`` / ``<attempt>#<seq>`` item that
    # holds the ids given to its lines and is marked ``done`` once they are written, with
    # the run's usage (``LOGUSE#<run>``), in one transaction. A resent batch finds it:
    # done, nothing is written; not done (a writer died half-way), its lines are written
    # again under the same ids, so each is stored once.
    def append_logs(
        self,
        run_id: str,
        lines: Sequence[LogLine],
        *,
        batch: tuple[int, int] | None = None,
        limits: LogLimits | None = None,
    ) -> bool:
        batch_key = None
        first: int | None = None
        if batch is not None:
            batch_key = {"pk": f"LOGBATCH#{run_id}", "sk": f"{batch[0]:010d}#{batch[1]:010d}"}
            first = self._claim_batch(batch_key, len(lines))
            if first is None:
                return False
        usage = self._get(f"LOGUSE#{run_id}", "USE") or {}
        used = (int(usage.get("lines", 0)), int(usage.get("bytes", 0)))
        if usage.get("dropped_lines") and limits is not None:
            kept: list[LogLine] = []
            lost, lost_bytes = len(lines), sum(len(x.message.encode()) for x in lines)
        else:
            kept, lost, lost_bytes = fit_lines(lines, *used, limits)
        if first is None:
            first = self._next_ids("log", len(kept))[0] if kept else 0
        self._put_lines(run_id, first, kept)
        ops: list[dict[str, Any]] = []
        if limits is not None:
            ops.append(self._usage_op(run_id, usage, kept, lost, lost_bytes, lines, limits))
        if batch_key is not None:  # only one writer of a batch marks it done (and counts it)
            done = _update(
                batch_key,
                set_={"done": True},
                cond=lambda e: f"{e.n('done')} = {e.v(False)}",
            )
            ops.append({"Update": done})
        if ops:
            try:
                self._transact(ops)
            except ClientError as exc:
                if batch_key is None or "ConditionalCheckFailed" not in _cancelled(exc):
                    raise
                return False  # another copy of the batch finished first
        return True

    def _claim_batch(self, key: Item, count: int) -> int | None:
        """The first id of the batch's lines (new or reused), or ``None`` if it is stored."""
        found = self._get(key["pk"], key["sk"])
        if found is None:
            first = self._next_ids("log", max(count, 1))[0]
            try:
                self._put({**key, "first": first, "done": False}, "attribute_not_exists(pk)")
                return first
            except ClientError as exc:
                if _code(exc) != "ConditionalCheckFailedException":
                    raise
            found = self._get(key["pk"], key["sk"]) or {}
        return None if found.get("done", True) else int(found["first"])

    def _usage_op(
        self,
        run_id: str,
        usage: Item,
        kept: list[LogLine],
        lost: int,
        lost_bytes: int,
        lines: Sequence[LogLine],
        limits: LogLimits,
    ) -> dict[str, Any]:
        values: Item = {
            "lines": int(usage.get("lines", 0)) + len(kept),
            "bytes": int(usage.get("bytes", 0)) + sum(len(x.message.encode()) for x in kept),
            "dropped_lines": int(usage.get("dropped_lines", 0)) + lost,
            "dropped_bytes": int(usage.get("dropped_bytes", 0)) + lost_bytes,
            "marker_id": usage.get("marker_id"),
        }
        if lost:
            if values["marker_id"] is None:
                values["marker_id"] = self._next_ids("log", 1)[0]
            marker = LogLine(
                run_id=run_id,
                timestamp=lines[-1].timestamp,
                level="WARNING",
                message=log_cap_message(limits, values["dropped_lines"], values["dropped_bytes"]),
                stream="logging",
                logger="pushpool",
            )
            self._put_lines(run_id, int(values["marker_id"]), [marker])
        return {"Update": _update({"pk": f"LOGUSE#{run_id}", "sk": "USE"}, set_=values)}

    def _put_lines(self, run_id: str, first: int, lines: Sequence[LogLine]) -> None:
        expires = int(self._now()) + self.log_retention_seconds
        requests = [
            {
                "PutRequest": {
                    "Item": _enc(
                        {
                            "pk": f"LOG#{run_id}",
                            "sk": f"{i:020d}",
                            "id": i,
                            "timestamp": ts(line.timestamp),
                            "level": line.level,
                            "message": line.message,
                            "stream": line.stream,
                            "logger": line.logger,
                            "task_run_id": line.task_run_id,
                            "expires_at": expires,
                        }
                    )
                }
            }
            for i, line in enumerate(lines, start=first)
        ]
        self._batch_write(requests)

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        """BatchWriteItem in chunks of 25, retrying unprocessed items a few times."""
        for start in range(0, len(requests), 25):
            pending = {self.table: requests[start : start + 25]}
            for attempt in range(_RETRIES):
                resp = self.client.batch_write_item(RequestItems=pending)
                pending = resp.get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(0.01 * (attempt + 1))

    def read_logs(
        self,
        run_id: str,
        *,
        after_id: int = 0,
        limit: int = 1000,
        max_bytes: int | None = None,
        task_run_id: str | None = None,
    ) -> list[LogLine]:
        now = int(self._now())
        out: list[LogLine] = []

        def live(e: Any) -> str:  # not expired, and the task run's when one is asked for
            alive = f"{e.n('expires_at')} > {e.v(now)}"
            if task_run_id is None:
                return alive
            return f"{alive} AND {e.n('task_run_id')} = {e.v(task_run_id)}"

        for item in self._query(
            "pk",
            f"LOG#{run_id}",
            sk=lambda e, k: f"{e.n(k)} > {e.v(f'{after_id:020d}')}",
            filt=live,
            page=limit,
            consistent=True,
        ):
            out.append(
                LogLine(
                    id=item["id"],
                    run_id=run_id,
                    timestamp=from_ts(item["timestamp"]),
                    level=item["level"],
                    message=item["message"],
                    stream=item["stream"],
                    logger=item.get("logger"),
                    task_run_id=item.get("task_run_id"),
                )
            )
            if len(out) >= limit:
                break
        return take_within(out, max_bytes)

    def delete_logs(self, *, run_ids: Sequence[str] = (), before: datetime | None = None) -> int:
        """Per run: a ``Query`` of each of its partitions. ``before`` is not needed here
        (:attr:`expires_logs`): every line expires by its TTL ``expires_at``, and reads
        skip expired lines at once."""
        deleted = 0
        for run_id in run_ids:
            for prefix in ("LOG", "LOGBATCH"):
                keys = [
                    {"pk": i["pk"], "sk": i["sk"]}
                    for i in self._query("pk", f"{prefix}#{run_id}", consistent=True)
                ]
                self._batch_write([{"DeleteRequest": {"Key": _enc(k)}} for k in keys])
                deleted += len(keys) if prefix == "LOG" else 0
            self._delete(f"LOGUSE#{run_id}", "USE")
        return deleted

    # -- task runs, cache records, tag concurrency limits ----------------------------
    def upsert_task_runs(self, run_id: str, task_runs: Sequence[TaskRun]) -> None:
        latest = {tr.id: tr for tr in task_runs}
        requests = [
            {
                "PutRequest": {
                    "Item": _enc({"pk": f"TASKRUN#{run_id}", "sk": i, "data": tr.model_dump_json()})
                }
            }
            for i, tr in latest.items()
        ]
        self._batch_write(requests)

    def list_task_runs(self, run_id: str) -> list[TaskRun]:
        items = self._query("pk", f"TASKRUN#{run_id}", consistent=True)
        return sort_task_runs(TaskRun.model_validate_json(item["data"]) for item in items)

    def put_cache_record(self, record: CacheRecord) -> None:
        item: Item = {"pk": f"CACHE#{record.key}", "sk": "CACHE", "result_key": record.result_key}
        if record.expires_at is not None:  # the table's TTL attribute: epoch seconds
            item["expires_at"] = math.ceil(record.expires_at.timestamp())
            item["expires"] = ts(record.expires_at)
        self._put(item)

    def get_cache_record(self, key: str, now: datetime) -> CacheRecord | None:
        item = self._get(f"CACHE#{key}", "CACHE")
        if item is None:
            return None
        expires = item.get("expires")
        record = CacheRecord(
            key=key,
            result_key=item["result_key"],
            expires_at=from_ts(expires) if expires is not None else None,
        )
        return record if cache_record_valid(record, now) else None

    # -- tag concurrency limits: one item per tag, leases as {holder: expiry} JSON and a
    # version; a change is a conditional write on the version (optimistic locking) ----
    def put_concurrency_limit(self, tag: str, limit: int) -> None:
        e = _Expr()
        self._upd(
            {
                "Key": _enc({"pk": "CLIMITS", "sk": tag}),
                "UpdateExpression": (
                    f"SET {e.n('limit')} = {e.v(limit)}, "
                    f"{e.n('leases')} = if_not_exists({e.n('leases')}, {e.v('{}')}), "
                    f"{e.n('ver')} = if_not_exists({e.n('ver')}, {e.v(0)})"
                ),
                **e.args(),
            }
        )

    def list_concurrency_limits(self, now: datetime) -> list[ConcurrencyLimit]:
        return [
            ConcurrencyLimit(
                tag=item["sk"],
                limit=item["limit"],
                active_slots=len(_live_leases(item, now)),
            )
            for item in self._query("pk", "CLIMITS", consistent=True)
        ]

    def delete_concurrency_limit(self, tag: str) -> None:
        try:
            self.client.delete_item(
                TableName=self.table,
                Key=_enc({"pk": "CLIMITS", "sk": tag}),
                ConditionExpression="attribute_exists(pk)",
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise ConcurrencyLimitNotFound(tag) from None
            raise

    def acquire_slots(
        self, tags: Sequence[str], holder: str, now: datetime, expires_at: datetime
    ) -> bool:
        for attempt in range(_RETRIES):
            items = [item for tag in dict.fromkeys(tags) if (item := self._get("CLIMITS", tag))]
            if not items:
                return True
            ops = []
            for item in items:
                leases = _live_leases(item, now)
                leases.pop(holder, None)
                if len(leases) >= item["limit"]:
                    return False
                leases[holder] = ts(expires_at)
                ops.append(self._lease_update(item, leases))
            try:
                self._transact(ops)
                return True
            except ClientError as exc:
                if "ConditionalCheckFailed" not in _cancelled(exc):
                    raise
                time.sleep(0.005 * (attempt + 1))  # another holder changed a tag: re-read
        return False

    def release_slots(self, holder: str, tags: Sequence[str]) -> None:
        for tag in dict.fromkeys(tags):
            for _ in range(_RETRIES):
                item = self._get("CLIMITS", tag)
                leases = json.loads(item["leases"]) if item else {}
                if holder not in leases:
                    break
                del leases[holder]
                try:
                    self._transact([self._lease_update(item or {}, leases)])
                    break
                except ClientError as exc:
                    if "ConditionalCheckFailed" not in _cancelled(exc):
                        raise

    @staticmethod
    def _lease_update(item: Item, leases: dict[str, str]) -> dict[str, Any]:
        version = item["ver"]
        return {
            "Update": _update(
                {"pk": "CLIMITS", "sk": item["sk"]},
                set_={"leases": json.dumps(leases), "ver": version + 1},
                cond=lambda e: f"{e.n('ver')} = {e.v(version)}",
            )
        }


def _run_filter_parts(e: _Expr, flt: RunFilter) -> list[str]:
    """Filter-expression terms for the run attributes no index is keyed on."""
    parts = []
    if flt.flow_name is not None:
        parts.append(f"{e.n('flow_name')} = {e.v(flt.flow_name)}")
    if flt.name is not None:
        parts.append(f"{e.n('name')} = {e.v(flt.name)}")
    if flt.id_prefix is not None:
        parts.append(f"begins_with({e.n('id')}, {e.v(flt.id_prefix)})")
    if flt.tag is not None:  # tags are stored as a JSON list
        parts.append(f"contains({e.n('tags')}, {e.v(json.dumps(flt.tag))})")
    return parts


def _run_sk_condition(
    ascending: bool, after: str | None, floor: str | None, ceiling: str | None
) -> Callable[[_Expr, str], str] | None:
    """The sort-key condition of a run listing: past the cursor, and from ``since`` on
    (oldest first) or below ``before`` (newest first); the other bound is where the caller
    stops reading."""
    if after is not None:
        op = ">" if ascending else "<"
        return lambda e, k: f"{e.n(k)} {op} {e.v(after)}"
    if ascending and floor is not None:
        return lambda e, k: f"{e.n(k)} >= {e.v(floor)}"
    if not ascending and ceiling is not None:
        return lambda e, k: f"{e.n(k)} < {e.v(ceiling)}"
    return None


def _encode_cursor(run: FlowRun) -> str:
    raw = f"{run.expected_start.isoformat()}|{run.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    """The sort key (``T#id``) a page continues below."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        start, run_id = raw.split("|", 1)
        value = datetime.fromisoformat(start)
        if value.tzinfo is None:
            raise ValueError("naive")
        return _order(value, run_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor", "not a cursor this server issued") from exc


#: ``version -> step`` that rewrites items from ``version - 1``'s layout; none yet.
_ITEM_UPGRADES: dict[int, Callable[[DynamoStore], None]] = {}


def _live_leases(item: Item, now: datetime) -> dict[str, str]:
    """The item's leases that have not expired at ``now``."""
    leases: dict[str, str] = json.loads(item.get("leases") or "{}")
    return {holder: until for holder, until in leases.items() if from_ts(until) > now}
