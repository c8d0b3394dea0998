"""DynamoDB store: giving back every tag-concurrency slot a flow run's task runs hold.

Leases live in each limit's ``CLIMITS`` item (a JSON map holder -> expiry, versioned by
``ver``); every limit is read and the matching holders removed with the same
compare-and-set as a release, re-read on a conflict.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

_RETRIES = 20


class DynamoTaskSlotsMixin:
    """``DynamoStore`` inherits this (``_query``, ``_get``, ``_transact``, ``_lease_update``)."""

    def release_holder_slots(self, holder_prefix: str) -> int:
        from service.store.dynamo import _cancelled

        store: Any = self
        released = 0
        for item in store._query("pk", "CLIMITS", consistent=True):
            for _ in range(_RETRIES):
                leases: dict[str, str] = json.loads(item.get("leases") or "{}")
                mine = [holder for holder in leases if holder.startswith(holder_prefix)]
                if not mine:
                    break
                kept = {h: until for h, until in leases.items() if h not in mine}
                try:
                    store._transact([store._lease_update(item, kept)])
                    released += len(mine)
                    break
                except ClientError as exc:
                    if "ConditionalCheckFailed" not in _cancelled(exc):
                        raise
                    item = store._get("CLIMITS", item["sk"]) or {}
        return released
