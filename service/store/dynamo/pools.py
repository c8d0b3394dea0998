"""Work pools: one item each under ``POOL``, with the ``active`` and ``deployments`` counters."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from service.errors import (
    AlreadyExists,
    Conflict,
    PoolNotFound,
)
from service.models import (
    WorkPool,
)
from service.store.base import (
    check_pool_changes,
)
from service.store.dynamo._table import (
    Item,
    _code,
    _dec,
    _enc,
    _Expr,
    _Table,
    _update,
    from_ts,
    ts,
)


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


class PoolsMixin(_Table):
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
