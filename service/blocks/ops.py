"""Block operations for the API, the CLI and dispatch: types, documents, secrets.

Secret fields (a type's top-level ``writeOnly`` properties) are encrypted with the
keyring before the store sees them, and leave the service in clear only through
:func:`read_values` (the runner route of a run whose deployment declares the block,
and dispatch resolving a process pool's ``env``). Everything else gets the masked
:class:`BlockView`. Validation messages are scrubbed of secret values.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import Field

from service.blocks.crypto import Keyring
from service.blocks.models import BlockDocument, BlockRef, BlockType, Slug
from service.errors import AlreadyExists, BlockNotFound, BlockTypeNotFound, Conflict, InvalidInput
from service.models import BoundedDict, Name, Strict
from service.services import Services

#: What a secret field reads as outside the flow that declared it.
MASK = "********"


def keyring(svc: Services) -> Keyring:
    """The service's keyring of block secrets (one per process, built on first use)."""
    return svc.dispatcher.blocks_keyring()


# -- types ---------------------------------------------------------------------------------
def secret_fields(schema: dict[str, Any]) -> list[str]:
    """The top-level properties marked ``writeOnly`` (directly or in an ``anyOf`` branch)."""
    out = []
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict):
            continue
        branches = [prop, *[b for b in prop.get("anyOf", []) if isinstance(b, dict)]]
        if any(b.get("writeOnly") is True for b in branches):
            out.append(name)
    return out


def _nested_write_only(schema: dict[str, Any]) -> str | None:
    """The path of a ``writeOnly`` that is not on a top-level property, if any."""
    allowed: set[tuple[Any, ...]] = set()
    for name, prop in (schema.get("properties") or {}).items():
        allowed.add(("properties", name))
        if isinstance(prop, dict):
            allowed |= {("properties", name, "anyOf", i) for i in range(len(prop.get("anyOf", [])))}
    stack: list[tuple[tuple[Any, ...], Any]] = [((), schema)]
    while stack:
        here, node = stack.pop()
        if isinstance(node, dict):
            if "writeOnly" in node and here not in allowed:
                return ".".join(str(p) for p in (*here, "writeOnly"))
            stack.extend(((*here, k), v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend(((*here, i), v) for i, v in enumerate(node))
    return None


@functools.cache
def builtin_types() -> dict[str, BlockType]:
    """The built-in types, from the SDK's models (the one definition of them)."""
    from pushpool.blocks import BUILTIN_BLOCKS

    out = {}
    for slug, cls in BUILTIN_BLOCKS.items():
        schema = cls.type_schema()
        out[slug] = BlockType(
            slug=slug,
            description=(cls.__doc__ or "").strip().splitlines()[0],
            json_schema=schema,
            secret_fields=secret_fields(schema),
            builtin=True,
        )
    return out


class BlockTypeCreate(Strict):
    """A user block type: a JSON Schema of an object; ``writeOnly`` top-level properties
    are its secret fields."""

    slug: Slug
    description: str = Field(default="", max_length=2000)
    json_schema: BoundedDict = Field(examples=[{"type": "object", "properties": {}}])


def get_type(svc: Services, slug: str) -> BlockType:
    found = builtin_types().get(slug)
    return found if found is not None else svc.store.get_block_type(slug)


def list_types(svc: Services) -> list[BlockType]:
    return [*builtin_types().values(), *svc.store.list_block_types()]


def register_type(svc: Services, body: BlockTypeCreate) -> tuple[BlockType, bool]:
    """Create or replace a user type. A built-in slug is a 409; so is a changed schema
    while documents of the type exist (they were validated against the old one)."""
    from service.validation import check_json_schema

    if body.slug in builtin_types():
        raise AlreadyExists("built-in block type", body.slug)
    schema = body.json_schema
    if schema.get("type") != "object":
        raise InvalidInput("json_schema.type", "a block type's schema must be of type 'object'")
    check_json_schema(schema, "json_schema")
    nested = _nested_write_only(schema)
    if nested is not None:
        raise InvalidInput(
            f"json_schema.{nested}",
            "writeOnly (a secret) is supported on top-level properties only",
        )
    existing = None
    with contextlib.suppress(BlockTypeNotFound):
        existing = svc.store.get_block_type(body.slug)
    if existing is not None and existing.json_schema != schema and svc.store.list_blocks(body.slug):
        raise Conflict(
            f"block type {body.slug!r} has documents: delete them before changing its schema"
        )
    now = svc.clock()
    block_type = BlockType(
        slug=body.slug,
        description=body.description,
        json_schema=schema,
        secret_fields=secret_fields(schema),
        created_at=existing.created_at if existing else now,
        updated_at=now,
    )
    svc.store.put_block_type(block_type)
    return block_type, existing is None


def delete_type(svc: Services, slug: str) -> None:
    if slug in builtin_types():
        raise Conflict(f"block type {slug!r} is built in and cannot be deleted")
    svc.store.delete_block_type(slug)


# -- documents -----------------------------------------------------------------------------
class BlockValues(Strict):
    """A block document's values. A secret field left out (or sent as ``********``) keeps
    its current value; send ``null`` to clear an optional one."""

    values: BoundedDict = Field(default_factory=dict)


class BlockView(Strict):
    """A block document as the API shows it: secret fields that are set read ``********``."""

    type: Slug
    name: Name
    ref: BlockRef
    values: dict[str, Any]
    secret_fields: list[str]
    version: int
    created_at: datetime
    updated_at: datetime


def view(doc: BlockDocument, block_type: BlockType) -> BlockView:
    masked = {**doc.values, **dict.fromkeys(doc.secrets, MASK)}
    return BlockView(
        type=doc.type,
        name=doc.name,
        ref=doc.ref,
        values=masked,
        secret_fields=block_type.secret_fields,
        version=doc.version,
        created_at=doc.created_at,
        updated_at=doc.updated_at,
    )


def _find(svc: Services, slug: str, name: str) -> BlockDocument | None:
    try:
        return svc.store.get_block(slug, name)
    except BlockNotFound:
        return None


def _scrub(message: str, secrets: list[str]) -> str:
    for value in sorted(secrets, key=len, reverse=True):
        if value:
            for form in {value, json.dumps(value)[1:-1], repr(value)[1:-1]}:
                message = message.replace(form, MASK)
    return message


def _check_values(block_type: BlockType, values: dict[str, Any]) -> None:
    """422 naming the first invalid field; never a secret's value in the message."""
    from service.validation import first_error

    problem = first_error(block_type.json_schema, values)
    if problem is None:
        return
    path, message = problem
    where = ".".join(["values", *(str(p) for p in path)])
    if path and path[0] in block_type.secret_fields:
        message = "invalid (the value is secret and not shown)"
    clear = [json.dumps(values[f]) for f in block_type.secret_fields if f in values]
    clear += [values[f] for f in block_type.secret_fields if isinstance(values.get(f), str)]
    raise InvalidInput(where, _scrub(message, clear))


def put_block(svc: Services, slug: str, name: str, body: BlockValues) -> tuple[BlockView, bool]:
    """Create or replace ``slug/name`` (validated, secrets encrypted). Returns the
    masked view and whether it was created."""
    block_type = get_type(svc, slug)
    ring = keyring(svc)
    existing = _find(svc, slug, name)
    kept = existing.secrets if existing is not None else {}
    values = dict(body.values)
    for field in block_type.secret_fields:
        if (field not in values or values[field] == MASK) and field in kept:
            values[field] = json.loads(ring.decrypt(kept[field]))
        elif values.get(field) == MASK:
            raise InvalidInput(f"values.{field}", "has no value to keep: give the secret")
    _check_values(block_type, values)
    secrets = {
        f: ring.encrypt(json.dumps(values.pop(f)))
        for f in block_type.secret_fields
        if values.get(f) is not None
    }
    for field in block_type.secret_fields:
        values.pop(field, None)
    now = svc.clock()
    doc = BlockDocument(
        type=slug,
        name=name,
        values=values,
        secrets=secrets,
        version=existing.version + 1 if existing else 1,
        created_at=existing.created_at if existing else now,
        updated_at=now,
    )
    svc.store.put_block(doc)
    return view(doc, block_type), existing is None


def get_view(svc: Services, slug: str, name: str) -> BlockView:
    return view(svc.store.get_block(slug, name), get_type(svc, slug))


def list_views(svc: Services, slug: str | None = None) -> list[BlockView]:
    types = {t.slug: t for t in list_types(svc)}
    return [view(doc, types[doc.type]) for doc in svc.store.list_blocks(slug) if doc.type in types]


def read_values(svc: Services, slug: str, name: str) -> dict[str, Any]:
    """The document's values with its secrets in clear, for the runner route (a block the
    run's deployment declares) only: see :func:`service.blocks.resolve.read_values`."""
    from service.blocks.resolve import read_values as read

    return read(svc.store, keyring(svc), slug, name)


def rotate_all(svc: Services, progress: Callable[[str], None] = lambda ref: None) -> int:
    """Re-encrypt every document's secrets under the keyring's first key (each write
    conditional on the version read; a document changed meanwhile is read again).
    Returns how many documents were rewritten."""
    ring = keyring(svc)
    count = 0
    for doc in svc.store.list_blocks(None):
        while doc.secrets:
            rotated = {f: ring.rotate(t) for f, t in doc.secrets.items()}
            again = doc.model_copy(update={"secrets": rotated, "version": doc.version + 1})
            try:
                svc.store.put_block(again)
                count += 1
                break
            except Conflict:
                found = _find(svc, doc.type, doc.name)
                if found is None:
                    break
                doc = found
        progress(doc.ref)
    return count
