"""Store conformance for blocks: every backend (sqlite, postgres, dynamodb)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from service.blocks.models import BlockDocument, BlockType
from service.errors import BlockInUse, BlockNotFound, BlockTypeNotFound, Conflict
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


def test_a_block_a_deployment_declares_is_not_deleted(store: Store) -> None:
    store.create_pool(WorkPool(name="p", type="process", created_at=T0, updated_at=T0))
    dep = Deployment.model_validate(
        {
            "id": str(uuid.uuid4()),
            "name": "d",
            "flow_name": "flow",
            "entrypoint": "f.py:flow",
            "work_pool": "p",
            "source": {"type": "image"},
            "blocks": ["secret/a"],
            "created_at": T0,
            "updated_at": T0,
        }
    )
    store.upsert_deployment(dep, [])
    store.put_block(doc())
    store.put_block(doc(name="b"))
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
