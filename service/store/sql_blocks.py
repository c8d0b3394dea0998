"""The SQL store's blocks (a mixin of :class:`service.store.sql.SqlStore`): block types
and documents, the documents' secrets as Fernet tokens in their own column."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, delete, insert, select, tuple_, update

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
        """The document's row is locked first (``FOR UPDATE``), then the deployments are
        read: a deployment written meanwhile holds the row's key-share lock
        (:meth:`_hold_blocks`) until it commits, so it is either seen here or finds the
        block gone."""
        bd = t.block_documents
        ref = f"{slug}/{name}"
        where = (bd.c.type == slug, bd.c.name == name)
        with self._write() as c:
            if c.execute(select(bd.c.version).where(*where).with_for_update()).first() is None:
                raise BlockNotFound(ref)
            users = deployments_using(_deployments(c), ref)
            if users:
                raise BlockInUse(ref, users)
            c.execute(delete(bd).where(*where))

    @staticmethod
    def _hold_blocks(c: Connection, refs: list[str]) -> None:
        """Keep the blocks ``refs`` (``type/name``) from being deleted until ``c``
        commits (PostgreSQL: ``FOR KEY SHARE`` on their rows; SQLite's writes are
        serialised anyway). ``BlockNotFound`` naming the first one missing."""
        if not refs:
            return
        bd = t.block_documents
        pairs = [tuple(ref.split("/", 1)) for ref in refs]
        found = c.execute(
            select(bd.c.type, bd.c.name)
            .where(tuple_(bd.c.type, bd.c.name).in_(pairs))
            .with_for_update(read=True, key_share=True)
        ).all()
        present = {f"{row.type}/{row.name}" for row in found}
        for ref in sorted(refs):
            if ref not in present:
                raise BlockNotFound(ref)


def _deployments(c: Connection) -> Iterator[Deployment]:
    for row in c.execute(select(t.deployments.c.doc)):
        yield Deployment.model_validate(row.doc)
