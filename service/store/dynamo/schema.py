"""The table's lifecycle: creating it, the schema version and its item upgrades, meta items."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from service.errors import (
    SchemaError,
)
from service.store.dynamo._runkeys import began_attrs, ref_keys
from service.store.dynamo._table import (
    _GSIS,
    Item,
    _code,
    _enc,
    _Table,
    _update,
    from_ts,
    ts,
)
from service.store.dynamo.events import add_index_keys

#: The item layout this code reads and writes; see "Schema versions" above.
SCHEMA_VERSION = 3
_SCHEMA_KEY = "schema.version"
_SCHEMA_NOTES = {
    1: "baseline: the item layout as released in 0.1.0",
    2: "runs found without a scan: the by_began GSI (began_at), RUNNAME#/RUNID# lookup items",
    3: "events found by sparse indexes: name, deployment and flow label keys on event items",
}
#: Seconds to wait for a new GSI to be built (it is backfilled from the table).
_INDEX_WAIT_SECONDS = 1800


class SchemaMixin(_Table):
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
                GlobalSecondaryIndexes=[_gsi(name, g) for name, g in _GSIS],
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


def _gsi(name: str, g: str) -> dict[str, Any]:
    return {
        "IndexName": name,
        "KeySchema": [
            {"AttributeName": f"{g}pk", "KeyType": "HASH"},
            {"AttributeName": f"{g}sk", "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    }


def _add_missing_indexes(table: _Table, sleep: Callable[[float], None] = time.sleep) -> None:
    """Create each GSI of ``_GSIS`` the table lacks (one per ``UpdateTable``, as DynamoDB
    allows) and wait until it is ``ACTIVE``. Setup only, like ``_create_table``."""
    for name, g in _GSIS:
        for waited in range(_INDEX_WAIT_SECONDS + 1):
            desc = table.client.describe_table(TableName=table.table)["Table"]
            status = {
                i["IndexName"]: i.get("IndexStatus") for i in desc.get("GlobalSecondaryIndexes", [])
            }
            if status.get(name) == "ACTIVE":
                break
            if name not in status:
                table.client.update_table(
                    TableName=table.table,
                    AttributeDefinitions=[
                        {"AttributeName": f"{g}{k}", "AttributeType": "S"} for k in ("pk", "sk")
                    ],
                    GlobalSecondaryIndexUpdates=[{"Create": _gsi(name, g)}],
                )
            elif waited == _INDEX_WAIT_SECONDS:
                raise TimeoutError(f"index {name} of {table.table} is not ACTIVE yet; run again")
            sleep(1)


def _v2_began_and_lookups(table: _Table) -> None:
    """Version 2: the ``by_began`` GSI, each run's ``began_at`` (its ``start_time``, or
    for a run no longer ``SCHEDULED`` that never ran, its state's time) and its lookup
    items. Reads every run once (a ``Query`` of ``by_kind``); idempotent: a run that has
    begun since keeps its own ``began_at`` (the write is conditional on none)."""
    _add_missing_indexes(table)
    lookups: list[dict[str, Any]] = []
    for item in table._query("gsi3pk", "RUNS", index="by_kind"):
        began = item.get("start_time")
        if began is None and item["state_type"] != "SCHEDULED":
            began = item["state_timestamp"]
        if began is not None and "gsi4pk" not in item:
            with contextlib.suppress(ClientError):  # began (or deleted) meanwhile
                table._upd(
                    _update(
                        {"pk": item["pk"], "sk": item["sk"]},
                        set_=began_attrs(item["id"], from_ts(began)),
                        cond=lambda e: (
                            f"attribute_exists(pk) AND attribute_not_exists({e.n('gsi4pk')})"
                        ),
                    )
                )
        lookups += [
            {"PutRequest": {"Item": _enc(k)}} for k in ref_keys(item["id"], item.get("name"))
        ]
        if len(lookups) >= 500:
            table._batch_write(lookups)
            lookups = []
    table._batch_write(lookups)


#: ``version -> step`` that rewrites items from ``version - 1``'s layout.
_ITEM_UPGRADES: dict[int, Callable[[_Table], None]] = {
    2: _v2_began_and_lookups,
    3: add_index_keys,
}
