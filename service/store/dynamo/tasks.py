"""Task runs, cache records and tag concurrency limits (leases under optimistic locking)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from service.errors import (
    ConcurrencyLimitNotFound,
)
from service.models import (
    CacheRecord,
    ConcurrencyLimit,
    TaskRun,
)
from service.store.base import (
    cache_record_valid,
    sort_task_runs,
)
from service.store.dynamo._table import (
    _RETRIES,
    Item,
    _cancelled,
    _code,
    _enc,
    _Expr,
    _Table,
    _update,
    from_ts,
    ts,
)


class TasksMixin(_Table):
    # -- task runs, cache records, tag concurrency limits ----------------------------
    def upsert_task_runs(self, run_id: str, task_runs: Sequence[TaskRun]) -> None:
        latest = {tr.id: tr for tr in task_runs}
        requests = [
            {
                "PutRequest": {
                    "Item": _enc({"pk": f"TASKRUN#{run_id}", "sk": i, "data": tr.model_dump_json()})
                }
            }
            for i, tr in latest.items()
        ]
        self._batch_write(requests)

    def list_task_runs(self, run_id: str) -> list[TaskRun]:
        items = self._query("pk", f"TASKRUN#{run_id}", consistent=True)
        return sort_task_runs(TaskRun.model_validate_json(item["data"]) for item in items)

    def put_cache_record(self, record: CacheRecord) -> None:
        item: Item = {"pk": f"CACHE#{record.key}", "sk": "CACHE", "result_key": record.result_key}
        if record.expires_at is not None:  # the table's TTL attribute: epoch seconds
            item["expires_at"] = math.ceil(record.expires_at.timestamp())
            item["expires"] = ts(record.expires_at)
        self._put(item)

    def get_cache_record(self, key: str, now: datetime) -> CacheRecord | None:
        item = self._get(f"CACHE#{key}", "CACHE")
        if item is None:
            return None
        expires = item.get("expires")
        record = CacheRecord(
            key=key,
            result_key=item["result_key"],
            expires_at=from_ts(expires) if expires is not None else None,
        )
        return record if cache_record_valid(record, now) else None

    # -- tag concurrency limits: one item per tag, leases as {holder: expiry} JSON and a
    # version; a change is a conditional write on the version (optimistic locking) ----
    def put_concurrency_limit(self, tag: str, limit: int) -> None:
        e = _Expr()
        self._upd(
            {
                "Key": _enc({"pk": "CLIMITS", "sk": tag}),
                "UpdateExpression": (
                    f"SET {e.n('limit')} = {e.v(limit)}, "
                    f"{e.n('leases')} = if_not_exists({e.n('leases')}, {e.v('{}')}), "
                    f"{e.n('ver')} = if_not_exists({e.n('ver')}, {e.v(0)})"
                ),
                **e.args(),
            }
        )

    def list_concurrency_limits(self, now: datetime) -> list[ConcurrencyLimit]:
        return [
            ConcurrencyLimit(
                tag=item["sk"],
                limit=item["limit"],
                active_slots=len(_live_leases(item, now)),
            )
            for item in self._query("pk", "CLIMITS", consistent=True)
        ]

    def delete_concurrency_limit(self, tag: str) -> None:
        try:
            self.client.delete_item(
                TableName=self.table,
                Key=_enc({"pk": "CLIMITS", "sk": tag}),
                ConditionExpression="attribute_exists(pk)",
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise ConcurrencyLimitNotFound(tag) from None
            raise

    def acquire_slots(
        self, tags: Sequence[str], holder: str, now: datetime, expires_at: datetime
    ) -> bool:
        for attempt in range(_RETRIES):
            items = [item for tag in dict.fromkeys(tags) if (item := self._get("CLIMITS", tag))]
            if not items:
                return True
            ops = []
            for item in items:
                leases = _live_leases(item, now)
                leases.pop(holder, None)
                if len(leases) >= item["limit"]:
                    return False
                leases[holder] = ts(expires_at)
                ops.append(self._lease_update(item, leases))
            try:
                self._transact(ops)
                return True
            except ClientError as exc:
                if "ConditionalCheckFailed" not in _cancelled(exc):
                    raise
                time.sleep(0.005 * (attempt + 1))  # another holder changed a tag: re-read
        return False

    def release_slots(self, holder: str, tags: Sequence[str]) -> None:
        for tag in dict.fromkeys(tags):
            for _ in range(_RETRIES):
                item = self._get("CLIMITS", tag)
                leases = json.loads(item["leases"]) if item else {}
                if holder not in leases:
                    break
                del leases[holder]
                try:
                    self._transact([self._lease_update(item or {}, leases)])
                    break
                except ClientError as exc:
                    if "ConditionalCheckFailed" not in _cancelled(exc):
                        raise

    @staticmethod
    def _lease_update(item: Item, leases: dict[str, str]) -> dict[str, Any]:
        version = item["ver"]
        return {
            "Update": _update(
                {"pk": "CLIMITS", "sk": item["sk"]},
                set_={"leases": json.dumps(leases), "ver": version + 1},
                cond=lambda e: f"{e.n('ver')} = {e.v(version)}",
            )
        }


def _live_leases(item: Item, now: datetime) -> dict[str, str]:
    """The item's leases that have not expired at ``now``."""
    leases: dict[str, str] = json.loads(item.get("leases") or "{}")
    return {holder: until for holder, until in leases.items() if from_ts(until) > now}
