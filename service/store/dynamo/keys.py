"""API keys: one item per key, one per key hash (unique, the lookup); one admin stays."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from service.errors import (
    AlreadyExists,
    ApiKeyNotFound,
    Conflict,
    LastAdminKey,
)
from service.models import (
    ApiKey,
    Role,
)
from service.store.dynamo._table import (
    _RETRIES,
    Item,
    _cancelled,
    _code,
    _cond,
    _enc,
    _Expr,
    _opt_ts,
    _ser,
    _Table,
    _update,
    from_ts,
    ts,
)


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


class KeysMixin(_Table):
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
