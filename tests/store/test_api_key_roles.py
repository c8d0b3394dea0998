"""Store conformance for API key roles: stored and read back, the last admin key kept,
and keys written before roles existed read back as admin (both backends)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from service.errors import LastAdminKey
from service.models import ApiKey, Role
from service.store.base import Store

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def key(ident: str, role: Role = Role.ADMIN, pools: list[str] | None = None) -> ApiKey:
    return ApiKey(
        id=ident,
        name=ident,
        key_hash=ident.ljust(64, "0"),
        role=role,
        pools=pools,
        created_at=T0 + timedelta(seconds=len(ident)),
    )


def test_role_and_pools_round_trip(store: Store) -> None:
    deployer = store.create_api_key(key("d", Role.DEPLOYER, ["a", "b"]))
    viewer = store.create_api_key(key("vv", Role.VIEWER))
    assert store.find_api_key(deployer.key_hash) == deployer
    assert store.find_api_key(viewer.key_hash) == viewer
    assert [(k.id, k.role, k.pools) for k in store.list_api_keys()] == [
        ("d", Role.DEPLOYER, ["a", "b"]),
        ("vv", Role.VIEWER, None),
    ]


def test_the_last_admin_key_cannot_be_revoked(store: Store) -> None:
    store.create_api_key(key("a1"))
    store.create_api_key(key("a22"))
    store.create_api_key(key("d333", Role.DEPLOYER))
    assert store.revoke_api_key("a1", T0).revoked_at == T0
    with pytest.raises(LastAdminKey, match="last admin key"):
        store.revoke_api_key("a22", T0)
    assert store.find_api_key(key("a22").key_hash) is not None
    assert store.revoke_api_key("d333", T0).revoked_at == T0  # non-admins go freely
    assert store.revoke_api_key("a1", T0).revoked_at == T0  # again: idempotent


def test_concurrent_revokes_leave_one_admin(store: Store) -> None:
    ids = ["a1", "a22", "a333", "a4444"]
    for ident in ids:
        store.create_api_key(key(ident))
    barrier = threading.Barrier(len(ids))
    refused: list[str] = []

    def revoke(ident: str) -> None:
        barrier.wait()
        try:
            store.revoke_api_key(ident, T0)
        except LastAdminKey:
            refused.append(ident)

    threads = [threading.Thread(target=revoke, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    live = [k for k in store.list_api_keys() if k.revoked_at is None]
    assert len(live) == 1 and refused == [live[0].id]


# A SQL database from before roles: tests/store/test_migrations.py (0.1.0 upgraded).


def test_a_dynamodb_key_from_before_roles_reads_as_admin(tmp_path: Path) -> None:
    from conftest import dynamo_store

    with dynamo_store(tmp_path) as store:
        from service.store.dynamo import DynamoStore

        assert isinstance(store, DynamoStore)
        for item in (
            {"pk": "APIKEY", "sk": "old", "name": "admin", "key_hash": "e" * 64},
            {"pk": f"KEYHASH#{'e' * 64}", "sk": "KEYHASH", "id": "old"},
        ):
            store.client.put_item(
                TableName=store.table,
                Item={k: {"S": v} for k, v in item.items()}
                | {"created_at": {"S": "2026-01-01T00:00:00.000000Z"}},
            )
        found = store.find_api_key("e" * 64)
        assert found is not None and (found.role, found.pools) == (Role.ADMIN, None)
        with pytest.raises(LastAdminKey):
            store.revoke_api_key("old", T0)
