"""SQL store: giving back every tag-concurrency slot a flow run's task runs hold."""

from __future__ import annotations

from typing import Any

from service.store import tables as t


class SqlTaskSlotsMixin:
    """``SqlStore`` inherits this (its ``_one`` read and ``_write`` transaction)."""

    def release_holder_slots(self, holder_prefix: str) -> int:
        from sqlalchemy import delete, select

        store: Any = self
        sl = t.slot_leases
        escaped = holder_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        held = sl.c.holder.like(f"{escaped}%", escape="\\")
        # Most runs hold nothing: a read first spares them a write transaction.
        if store._one(select(sl.c.tag).where(held).limit(1)) is None:
            return 0
        with store._write() as c:
            result = c.execute(delete(sl).where(held))
        return int(result.rowcount or 0)
