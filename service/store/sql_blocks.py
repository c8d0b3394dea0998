"""The SQL store's blocks (a mixin of :class:`service.store.sql.SqlStore`): block types
and documents, the documents' secrets as Fernet tokens in their own column."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from service.blocks.models import BlockDocument, BlockType
from service.errors import BlockInUse, BlockNotFound, BlockTypeNotFound, Conflict
from service.models import Deployment
from service.store import tables as t
from service.store.base import deployments_using


class SqlBlocks:
    """Needs the host's ``_write()``/``_read()`` transactions."""

    def _write(self) -> AbstractContextManager[Connection]:  # pragma: no cover - SqlStore's
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Connection]:  # pragma: no cover - SqlStore's
        raise NotImplementedError

    def put_block_type(self, block_type: BlockType) -> None:
        bt = t.block_types
        doc = block_type.model_dump(mode="json")
        with self._write() as c:
            changed = c.execute(update(bt).where(bt.c.slug == block_type.slug).values(doc=doc))
            if not changed.rowcount:
                c.execute(insert(bt).values(slug=block_type.slug, doc=doc))

    def get_block_type(self, slug: str) -> BlockType:
        with self._read() as c:
            row = c.execute(select(t.block_types.c.doc).where(t.block_types.c.slug == slug)).first()
        if row is None:
            raise BlockTypeNotFound(slug)
        return BlockType.model_validate(row.doc)

    def list_block_types(self) -> list[BlockType]:
        bt = t.block_types
        with self._read() as c:
            rows = c.execute(select(bt.c.doc).order_by(bt.c.slug)).all()
        return [BlockType.model_validate(row.doc) for row in rows]

    def delete_block_type(self, slug: str) -> None:
        bd = t.block_documents
        with self._write() as c:
            if c.execute(select(bd.c.name).where(bd.c.type == slug).limit(1)).first():
                raise Conflict(f"block type {slug!r} has documents: delete them first")
            if not c.execute(delete(t.block_types).where(t.block_types.c.slug == slug)).rowcount:
                raise BlockTypeNotFound(slug)

    def put_block(self, doc: BlockDocument) -> None:
        bd = t.block_documents
        values: dict[str, Any] = {
            "doc": doc.model_dump(mode="json"),
            "secrets": dict(doc.secrets),
            "version": doc.version,
        }
        with self._write() as c:
            where = (bd.c.type == doc.type, bd.c.name == doc.name)
            stored = c.execute(select(bd.c.version).where(*where).with_for_update()).scalar()
            if doc.version == 1:
                if stored is not None:
                    raise Conflict(f"block {doc.ref!r} already exists")
                c.execute(insert(bd).values(type=doc.type, name=doc.name, **values))
                return
            if stored is None:
                raise BlockNotFound(doc.ref)
            if stored != doc.version - 1:
                raise Conflict(f"block {doc.ref!r} changed meanwhile: read it again")
            c.execute(update(bd).where(*where).values(**values))

    @staticmethod
    def _block(row: Any) -> BlockDocument:
        return BlockDocument.model_validate({**row.doc, "secrets": row.secrets})

    def get_block(self, slug: str, name: str) -> BlockDocument:
        bd = t.block_documents
        with self._read() as c:
            row = c.execute(
                select(bd.c.doc, bd.c.secrets).where(bd.c.type == slug, bd.c.name == name)
            ).first()
        if row is None:
            raise BlockNotFound(f"{slug}/{name}")
        return self._block(row)

    def list_blocks(self, slug: str | None) -> list[BlockDocument]:
        bd = t.block_documents
        q = select(bd.c.doc, bd.c.secrets).order_by(bd.c.type, bd.c.name)
        if slug is not None:
            q = q.where(bd.c.type == slug)
        with self._read() as c:
            return [self._block(row) for row in c.execute(q)]

    def delete_block(self, slug: str, name: str) -> None:
        bd = t.block_documents
        ref = f"{slug}/{name}"
        with self._write() as c:
            users = deployments_using(_deployments(c), ref)
            if users:
                raise BlockInUse(ref, users)
            if not c.execute(delete(bd).where(bd.c.type == slug, bd.c.name == name)).rowcount:
                raise BlockNotFound(ref)


def _deployments(c: Connection) -> Iterator[Deployment]:
    for row in c.execute(select(t.deployments.c.doc)):
        yield Deployment.model_validate(row.doc)
