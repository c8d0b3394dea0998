"""The DynamoDB store's blocks (a mixin of :class:`service.store.dynamo.DynamoStore`).

==================  ========================  ===============  ===========================
item                pk                        sk               attributes
==================  ========================  ===============  ===========================
user block type     ``BLOCKTYPE``             slug             doc J
block document      ``BLOCK``                 ``type/name``    doc J (no secrets), secrets
                                                               J (Fernet tokens), version
==================  ========================  ===============  ===========================

Every document write is one ``PutItem`` conditional on the version it replaces.
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

_ser = TypeSerializer()
_TYPES, _DOCS = "BLOCKTYPE", "BLOCK"


def _failed_condition(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoBlocks:
    """Needs the host's ``client``, ``table``, ``_get``, ``_query`` and
    ``list_deployments``."""

    client: Any
    table: str
    _get: Callable[[str, str], dict[str, Any] | None]
    _query: Callable[..., Iterator[dict[str, Any]]]
    list_deployments: Callable[..., list[Deployment]]

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
        item = {
            "pk": _DOCS,
            "sk": doc.ref,
            "doc": doc.model_dump_json(),
            "secrets": json.dumps(doc.secrets),
            "version": doc.version,
        }
        if doc.version == 1:
            condition, values = "attribute_not_exists(pk)", {}
        else:
            condition, values = "version = :v", {":v": doc.version - 1}
        try:
            self._write_item(item, condition, values)
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
        users = deployments_using(self.list_deployments(), ref)
        if users:
            raise BlockInUse(ref, users)
        if not self._delete_item(_DOCS, ref):
            raise BlockNotFound(ref)
