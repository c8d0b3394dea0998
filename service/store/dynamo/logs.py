"""Run logs: lines under ``LOG#<run>`` (TTL ``expires_at``), batches stored once, usage."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from service.models import (
    LogLine,
)
from service.store.base import (
    LogLimits,
    fit_lines,
    log_cap_message,
    take_within,
)
from service.store.dynamo._table import (
    Item,
    _cancelled,
    _code,
    _enc,
    _Table,
    _update,
    from_ts,
    ts,
)


class LogsMixin(_Table):
    # -- logs ----------------------------------------------------------------------------
    # A runner's batch is recorded by a ``LOGBATCH#<run>`` / ``<attempt>#<seq>`` item that
    # holds the ids given to its lines and is marked ``done`` once they are written, with
    # the run's usage (``LOGUSE#<run>``), in one transaction. A resent batch finds it:
    # done, nothing is written; not done (a writer died half-way), its lines are written
    # again under the same ids, so each is stored once.
    def append_logs(
        self,
        run_id: str,
        lines: Sequence[LogLine],
        *,
        batch: tuple[int, int] | None = None,
        limits: LogLimits | None = None,
    ) -> bool:
        batch_key = None
        first: int | None = None
        if batch is not None:
            batch_key = {"pk": f"LOGBATCH#{run_id}", "sk": f"{batch[0]:010d}#{batch[1]:010d}"}
            first = self._claim_batch(batch_key, len(lines))
            if first is None:
                return False
        usage = self._get(f"LOGUSE#{run_id}", "USE") or {}
        used = (int(usage.get("lines", 0)), int(usage.get("bytes", 0)))
        if usage.get("dropped_lines") and limits is not None:
            kept: list[LogLine] = []
            lost, lost_bytes = len(lines), sum(len(x.message.encode()) for x in lines)
        else:
            kept, lost, lost_bytes = fit_lines(lines, *used, limits)
        if first is None:
            first = self._next_ids("log", len(kept))[0] if kept else 0
        self._put_lines(run_id, first, kept)
        ops: list[dict[str, Any]] = []
        if limits is not None:
            ops.append(self._usage_op(run_id, usage, kept, lost, lost_bytes, lines, limits))
        if batch_key is not None:  # only one writer of a batch marks it done (and counts it)
            done = _update(
                batch_key,
                set_={"done": True},
                cond=lambda e: f"{e.n('done')} = {e.v(False)}",
            )
            ops.append({"Update": done})
        if ops:
            try:
                self._transact(ops)
            except ClientError as exc:
                if batch_key is None or "ConditionalCheckFailed" not in _cancelled(exc):
                    raise
                return False  # another copy of the batch finished first
        return True

    def _claim_batch(self, key: Item, count: int) -> int | None:
        """The first id of the batch's lines (new or reused), or ``None`` if it is stored."""
        found = self._get(key["pk"], key["sk"])
        if found is None:
            first = self._next_ids("log", max(count, 1))[0]
            try:
                self._put({**key, "first": first, "done": False}, "attribute_not_exists(pk)")
                return first
            except ClientError as exc:
                if _code(exc) != "ConditionalCheckFailedException":
                    raise
            found = self._get(key["pk"], key["sk"]) or {}
        return None if found.get("done", True) else int(found["first"])

    def _usage_op(
        self,
        run_id: str,
        usage: Item,
        kept: list[LogLine],
        lost: int,
        lost_bytes: int,
        lines: Sequence[LogLine],
        limits: LogLimits,
    ) -> dict[str, Any]:
        values: Item = {
            "lines": int(usage.get("lines", 0)) + len(kept),
            "bytes": int(usage.get("bytes", 0)) + sum(len(x.message.encode()) for x in kept),
            "dropped_lines": int(usage.get("dropped_lines", 0)) + lost,
            "dropped_bytes": int(usage.get("dropped_bytes", 0)) + lost_bytes,
            "marker_id": usage.get("marker_id"),
        }
        if lost:
            if values["marker_id"] is None:
                values["marker_id"] = self._next_ids("log", 1)[0]
            marker = LogLine(
                run_id=run_id,
                timestamp=lines[-1].timestamp,
                level="WARNING",
                message=log_cap_message(limits, values["dropped_lines"], values["dropped_bytes"]),
                stream="logging",
                logger="pushpool",
            )
            self._put_lines(run_id, int(values["marker_id"]), [marker])
        return {"Update": _update({"pk": f"LOGUSE#{run_id}", "sk": "USE"}, set_=values)}

    def _put_lines(self, run_id: str, first: int, lines: Sequence[LogLine]) -> None:
        expires = int(self._now()) + self.log_retention_seconds
        requests = [
            {
                "PutRequest": {
                    "Item": _enc(
                        {
                            "pk": f"LOG#{run_id}",
                            "sk": f"{i:020d}",
                            "id": i,
                            "timestamp": ts(line.timestamp),
                            "level": line.level,
                            "message": line.message,
                            "stream": line.stream,
                            "logger": line.logger,
                            "task_run_id": line.task_run_id,
                            "expires_at": expires,
                        }
                    )
                }
            }
            for i, line in enumerate(lines, start=first)
        ]
        self._batch_write(requests)

    def read_logs(
        self,
        run_id: str,
        *,
        after_id: int = 0,
        limit: int = 1000,
        max_bytes: int | None = None,
        task_run_id: str | None = None,
    ) -> list[LogLine]:
        now = int(self._now())
        out: list[LogLine] = []

        def live(e: Any) -> str:  # not expired, and the task run's when one is asked for
            alive = f"{e.n('expires_at')} > {e.v(now)}"
            if task_run_id is None:
                return alive
            return f"{alive} AND {e.n('task_run_id')} = {e.v(task_run_id)}"

        for item in self._query(
            "pk",
            f"LOG#{run_id}",
            sk=lambda e, k: f"{e.n(k)} > {e.v(f'{after_id:020d}')}",
            filt=live,
            page=limit,
            consistent=True,
        ):
            out.append(
                LogLine(
                    id=item["id"],
                    run_id=run_id,
                    timestamp=from_ts(item["timestamp"]),
                    level=item["level"],
                    message=item["message"],
                    stream=item["stream"],
                    logger=item.get("logger"),
                    task_run_id=item.get("task_run_id"),
                )
            )
            if len(out) >= limit:
                break
        return take_within(out, max_bytes)

    def delete_logs(self, *, run_ids: Sequence[str] = (), before: datetime | None = None) -> int:
        """Per run: a ``Query`` of each of its partitions. ``before`` is not needed here
        (:attr:`expires_logs`): every line expires by its TTL ``expires_at``, and reads
        skip expired lines at once."""
        deleted = 0
        for run_id in run_ids:
            for prefix in ("LOG", "LOGBATCH"):
                keys = [
                    {"pk": i["pk"], "sk": i["sk"]}
                    for i in self._query("pk", f"{prefix}#{run_id}", consistent=True)
                ]
                self._batch_write([{"DeleteRequest": {"Key": _enc(k)}} for k in keys])
                deleted += len(keys) if prefix == "LOG" else 0
            self._delete(f"LOGUSE#{run_id}", "USE")
        return deleted
