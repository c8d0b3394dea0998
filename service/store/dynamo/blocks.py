"""The DynamoDB store's blocks (a mixin of :class:`service.store.dynamo.DynamoStore`).

==================  ========================  ===============  ===========================
item                pk                        sk               attributes
==================  ========================  ===============  ===========================
user block type     ``BLOCKTYPE``             slug             doc J
block document      ``BLOCK``                 ``type/name``    doc J (no secrets), secrets
                                                               J (Fernet tokens), version,
                                                               users SS (deployment ids)
==================  ========================  ===============  ===========================

Every document write is conditional on the version it replaces (a create a ``PutItem``, a
replace an ``UpdateItem``, which leaves ``users`` alone).

``users`` holds the ids of the deployments whose ``blocks`` list the document: the
transaction that writes a deployment item adds its id to each block it newly lists
(conditional on the block existing: that is the deploy's ``BlockNotFound`` check) and
removes it from each it no longer lists; deleting a deployment removes it. The deployment
item records the blocks it is counted in (``blocks_in``) and every write of it is
conditional on that value (:func:`service.store.dynamo.deployments._dep_guard`).
``delete_block`` is one ``DeleteItem`` conditional on ``users`` being absent (DynamoDB
drops an emptied set), so a deploy and a delete racing cannot both succeed. Deployments
written before ``users`` existed are found by reading the deployments, as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

from service.blocks.models import BlockDocument, BlockType
from service.errors import BlockInUse, BlockNotFound, BlockTypeNotFound, Conflict
from service.models import Deployment
from service.store.base import deployments_using
from service.store.dynamo._table import _update

_ser = TypeSerializer()
_TYPES, _DOCS = "BLOCKTYPE", "BLOCK"


def _failed_condition(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def block_use_op(ref: str, deployment_id: str, *, add: bool) -> dict[str, Any]:
    """The transaction ``Update`` that adds ``deployment_id`` to (or removes it from) block
    ``ref``'s ``users``, conditional on the block existing."""
    return {
        "Update": {
            "Key": {"pk": {"S": _DOCS}, "sk": {"S": ref}},
            "UpdateExpression": f"{'ADD' if add else 'DELETE'} #u :d",
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeNames": {"#u": "users"},
            "ExpressionAttributeValues": {":d": {"SS": [deployment_id]}},
        }
    }


class DynamoBlocks:
    """Needs the host's ``client``, ``table``, ``_get``, ``_query``, ``list_deployments``
    and ``get_deployments``."""

    client: Any
    table: str
    _get: Callable[[str, str], dict[str, Any] | None]
    _query: Callable[..., Iterator[dict[str, Any]]]
    list_deployments: Callable[..., list[Deployment]]
    get_deployments: Callable[..., dict[str, Deployment]]

    def _write_item(self, item: dict[str, Any], condition: str, values: dict[str, Any]) -> None:
        kw: dict[str, Any] = {
            "TableName": self.table,
            "Item": {k: _ser.serialize(v) for k, v in item.items()},
            "ConditionExpression": condition,
        }
        if values:
            kw["ExpressionAttributeValues"] = {k: _ser.serialize(v) for k, v in values.items()}
        self.client.put_item(**kw)

    def _delete_item(self, pk: str, sk: str) -> bool:
        try:
            self.client.delete_item(
                TableName=self.table,
                Key={"pk": {"S": pk}, "sk": {"S": sk}},
                ConditionExpression="attribute_exists(pk)",
            )
        except ClientError as exc:
            if _failed_condition(exc):
                return False
            raise
        return True

    def put_block_type(self, block_type: BlockType) -> None:
        item = {"pk": _TYPES, "sk": block_type.slug, "doc": block_type.model_dump_json()}
        self.client.put_item(
            TableName=self.table, Item={k: _ser.serialize(v) for k, v in item.items()}
        )

    def get_block_type(self, slug: str) -> BlockType:
        item = self._get(_TYPES, slug)
        if item is None:
            raise BlockTypeNotFound(slug)
        return BlockType.model_validate_json(item["doc"])

    def list_block_types(self) -> list[BlockType]:
        items = self._query("pk", _TYPES, consistent=True)
        return [BlockType.model_validate_json(item["doc"]) for item in items]

    def delete_block_type(self, slug: str) -> None:
        if self._block_items(slug, limit_one=True):
            raise Conflict(f"block type {slug!r} has documents: delete them first")
        if not self._delete_item(_TYPES, slug):
            raise BlockTypeNotFound(slug)

    def put_block(self, doc: BlockDocument) -> None:
        fields = {
            "doc": doc.model_dump_json(),
            "secrets": json.dumps(doc.secrets),
            "version": doc.version,
        }
        try:
            if doc.version == 1:
                self._write_item(
                    {"pk": _DOCS, "sk": doc.ref, **fields}, "attribute_not_exists(pk)", {}
                )
            else:
                self.client.update_item(
                    TableName=self.table,
                    **_update(
                        {"pk": _DOCS, "sk": doc.ref},
                        set_=fields,
                        cond=lambda e: f"{e.n('version')} = {e.v(doc.version - 1)}",
                    ),
                )
        except ClientError as exc:
            if not _failed_condition(exc):
                raise
            if doc.version == 1:
                raise Conflict(f"block {doc.ref!r} already exists") from None
            if self._get(_DOCS, doc.ref) is None:
                raise BlockNotFound(doc.ref) from None
            raise Conflict(f"block {doc.ref!r} changed meanwhile: read it again") from None

    @staticmethod
    def _block(item: dict[str, Any]) -> BlockDocument:
        data = json.loads(item["doc"])
        return BlockDocument.model_validate({**data, "secrets": json.loads(item["secrets"])})

    def _block_items(self, slug: str | None, *, limit_one: bool = False) -> list[dict[str, Any]]:
        def prefix(e: Any, sk: str) -> str:
            return f"begins_with({e.n(sk)}, {e.v(f'{slug}/')})"

        items = self._query("pk", _DOCS, sk=prefix if slug is not None else None, consistent=True)
        if limit_one:
            first = next(items, None)
            return [first] if first is not None else []
        return list(items)

    def get_block(self, slug: str, name: str) -> BlockDocument:
        item = self._get(_DOCS, f"{slug}/{name}")
        if item is None:
            raise BlockNotFound(f"{slug}/{name}")
        return self._block(item)

    def list_blocks(self, slug: str | None) -> list[BlockDocument]:
        docs = [self._block(item) for item in self._block_items(slug)]
        return sorted(docs, key=lambda d: (d.type, d.name))

    def delete_block(self, slug: str, name: str) -> None:
        ref = f"{slug}/{name}"
        users = deployments_using(self.list_deployments(), ref)  # items from before ``users``
        if users:
            raise BlockInUse(ref, users)
        try:
            self.client.delete_item(
                TableName=self.table,
                Key={"pk": {"S": _DOCS}, "sk": {"S": ref}},
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(#u)",
                ExpressionAttributeNames={"#u": "users"},
            )
        except ClientError as exc:
            if not _failed_condition(exc):
                raise
            item = self._get(_DOCS, ref)
            if item is None:
                raise BlockNotFound(ref) from None
            ids = sorted(item.get("users") or ())
            found = self.get_deployments(ids)
            named = [f"{d.flow_name}/{d.name}" for d in found.values()]
            raise BlockInUse(ref, sorted(named) or ids) from None
