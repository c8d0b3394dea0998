"""Compare-and-set of a meta value (SQLite and PostgreSQL): :class:`SqlSharedMeta`."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, update

from service.store import tables as t


class SqlSharedMeta:
    """Mixed into :class:`~service.store.sql.SqlStore` (which provides these two)."""

    _write: Callable[[], AbstractContextManager[Connection]]
    _insert: Any

    def compare_and_set_meta(self, key: str, expected: str | None, value: str) -> bool:
        with self._write() as c:
            if expected is None:
                stmt = self._insert(t.meta).values(key=key, value=value).on_conflict_do_nothing()
                return c.execute(stmt.returning(t.meta.c.key)).first() is not None
            changed = c.execute(
                update(t.meta)
                .where(t.meta.c.key == key, t.meta.c.value == expected)
                .values(value=value)
            )
            return changed.rowcount == 1
