"""SQL store: giving back every tag-concurrency slot a flow run's task runs hold."""

from __future__ import annotations

from service.store import tables as t


class SqlTaskSlotsMixin:
    """``SqlStore`` inherits this; ``_write`` is the store's write transaction."""

    def release_holder_slots(self, holder_prefix: str) -> int:
        from sqlalchemy import delete

        sl = t.slot_leases
        escaped = holder_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self._write() as c:  # type: ignore[attr-defined]
            result = c.execute(delete(sl).where(sl.c.holder.like(f"{escaped}%", escape="\\")))
        return int(result.rowcount or 0)
