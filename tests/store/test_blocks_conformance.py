"""Store conformance for blocks: every backend (sqlite, postgres, dynamodb)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from store.test_conformance import deployment as store_deployment

from service.blocks.models import BlockDocument, BlockType
from service.errors import (
    BlockInUse,
    BlockNotFound,
    BlockTypeNotFound,
    Conflict,
    DeploymentNotFound,
)
from service.models import Deployment, WorkPool
from service.store.base import Store

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def doc(slug: str = "secret", name: str = "a", version: int = 1, **kw: object) -> BlockDocument:
    fields: dict[str, object] = {
        "type": slug,
        "name": name,
        "values": {"note": "plain"},
        "secrets": {"value": f"token-v{version}"},
        "version": version,
        "created_at": T0,
        "updated_at": T0,
    }
    return BlockDocument.model_validate(fields | kw)


def block_type(slug: str = "mine", required: list[str] | None = None) -> BlockType:
    schema = {"type": "object", "properties": {"x": {"type": "string"}}}
    if required:
        schema["required"] = required
    return BlockType(slug=slug, json_schema=schema, created_at=T0, updated_at=T0)


def test_block_types_round_trip(store: Store) -> None:
    assert store.list_block_types() == []
    store.put_block_type(block_type("b-type"))
    store.put_block_type(block_type("a-type"))
    store.put_block_type(block_type("b-type", required=["x"]))  # replaced
    assert [t.slug for t in store.list_block_types()] == ["a-type", "b-type"]
    assert store.get_block_type("b-type").json_schema["required"] == ["x"]
    with pytest.raises(BlockTypeNotFound):
        store.get_block_type("none")
    store.put_block(doc("a-type", "d"))
    with pytest.raises(Conflict):  # documents exist
        store.delete_block_type("a-type")
    store.delete_block_type("b-type")
    with pytest.raises(BlockTypeNotFound):
        store.delete_block_type("b-type")


def test_block_documents_are_versioned_writes(store: Store) -> None:
    store.put_block(doc())
    with pytest.raises(Conflict):  # version 1 creates only
        store.put_block(doc())
    store.put_block(doc(version=2, values={"note": "second"}))
    with pytest.raises(Conflict):  # replaces version 1 (stored: 2)
        store.put_block(doc(version=2))
    with pytest.raises(BlockNotFound):
        store.put_block(doc(name="absent", version=2))
    got = store.get_block("secret", "a")
    assert got.version == 2 and got.values == {"note": "second"}
    assert got.secrets == {"value": "token-v2"}  # stored with the document
    with pytest.raises(BlockNotFound):
        store.get_block("secret", "b")


def test_blocks_list_by_type_then_name(store: Store) -> None:
    for slug, name in (("smtp", "z"), ("secret", "b"), ("secret", "a"), ("secret-ish", "a")):
        store.put_block(doc(slug, name))
    assert [d.ref for d in store.list_blocks(None)] == [
        "secret/a",
        "secret/b",
        "secret-ish/a",
        "smtp/z",
    ]
    assert [d.ref for d in store.list_blocks("secret")] == ["secret/a", "secret/b"]
    assert all(d.secrets == {"value": "token-v1"} for d in store.list_blocks("smtp"))


def deployment(blocks: list[str], name: str = "d") -> Deployment:
    return store_deployment(name, blocks=blocks)


def pool(store: Store) -> None:
    store.create_pool(WorkPool(name="p", type="process", created_at=T0, updated_at=T0))


def test_a_block_a_deployment_declares_is_not_deleted(store: Store) -> None:
    pool(store)
    store.put_block(doc())
    store.put_block(doc(name="b"))
    dep = deployment(["secret/a"])
    store.upsert_deployment(dep, [])
    with pytest.raises(BlockInUse) as exc:
        store.delete_block("secret", "a")
    assert exc.value.deployments == ["flow/d"]
    assert store.get_block("secret", "a").version == 1  # still there
    store.delete_block("secret", "b")
    with pytest.raises(BlockNotFound):
        store.delete_block("secret", "b")
    store.delete_deployment(dep.id)
    store.delete_block("secret", "a")
    assert store.list_blocks(None) == []


def test_a_deploy_naming_a_missing_block_writes_nothing(store: Store) -> None:
    """The deploy's own check can pass before a delete: the store refuses the write."""
    pool(store)
    store.put_block(doc(name="kept"))
    with pytest.raises(BlockNotFound) as exc:
        store.upsert_deployment(deployment(["secret/kept", "secret/gone"]), [])
    assert exc.value.ident == "secret/gone"
    with pytest.raises(DeploymentNotFound):
        store.find_deployment("flow", "d")
    store.delete_block("secret", "kept")  # the failed deploy left no use behind


def test_block_uses_follow_deployment_changes(store: Store) -> None:
    pool(store)
    for name in ("a", "b", "c"):
        store.put_block(doc(name=name))
    dep, _ = store.upsert_deployment(deployment(["secret/a", "secret/b"]), [])
    other, _ = store.upsert_deployment(deployment(["secret/b"], name="e"), [])
    with pytest.raises(BlockInUse) as exc:
        store.delete_block("secret", "b")
    assert exc.value.deployments == ["flow/d", "flow/e"]
    # replaced: "a" is no longer listed, "c" is
    store.upsert_deployment(deployment(["secret/b", "secret/c"]), [])
    store.delete_block("secret", "a")
    with pytest.raises(BlockInUse):
        store.delete_block("secret", "c")
    store.put_block(doc(name="b", version=2))  # a replaced document keeps its users
    store.delete_deployment(other.id)
    with pytest.raises(BlockInUse) as exc:
        store.delete_block("secret", "b")
    assert exc.value.deployments == ["flow/d"]
    store.delete_deployment(dep.id)
    store.delete_block("secret", "b")
    store.delete_block("secret", "c")


def _race(store: Store, name: str) -> dict[str, str]:
    """Deploy ``flow/name`` listing ``secret/name`` and delete that block, at once."""
    results: dict[str, str] = {}
    start = threading.Barrier(2)

    def deploy() -> None:
        start.wait()
        try:
            store.upsert_deployment(deployment([f"secret/{name}"], name=name), [])
            results["deploy"] = "ok"
        except BlockNotFound as exc:
            results["deploy"] = f"missing {exc.ident}"

    def delete() -> None:
        start.wait()
        try:
            store.delete_block("secret", name)
            results["delete"] = "ok"
        except BlockInUse as exc:
            results["delete"] = f"in use by {','.join(exc.deployments)}"

    threads = [threading.Thread(target=deploy), threading.Thread(target=delete)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return results


def test_a_deploy_racing_a_delete_of_its_block_ends_consistent(store: Store) -> None:
    """Threads deploy a deployment listing a block while others delete that block: either
    the deploy fails naming the block (and nothing is written) or the delete is refused
    naming the deployment; never a deployment listing a block that is gone."""
    pool(store)  # (moto answers one request at a time, as DynamoDB serialises per item)
    for round_ in range(12):
        name = f"r{round_}"
        store.put_block(doc(name=name))
        results = _race(store, name)
        if results["deploy"] == "ok":
            assert results["delete"] == f"in use by flow/{name}"
            assert store.get_block("secret", name).ref == f"secret/{name}"
            assert store.find_deployment("flow", name).blocks == [f"secret/{name}"]
        else:
            assert results == {"deploy": f"missing secret/{name}", "delete": "ok"}
            with pytest.raises(DeploymentNotFound):
                store.find_deployment("flow", name)
