"""Task-run records: what the SDK reports about every task run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class TaskState(StrEnum):
    """The states a task run goes through."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    RETRYING = "RETRYING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CACHED = "CACHED"


TERMINAL_STATES = frozenset({TaskState.COMPLETED, TaskState.FAILED, TaskState.CACHED})


@dataclass
class TaskRunRecord:
    """One task run as reported to the control plane (latest snapshot wins).

    ``upstream`` holds the ids of task runs whose results were this run's inputs;
    ``result_key`` names the persisted result in the result store, if any.
    """

    id: str
    flow_run_id: str | None
    task_key: str
    name: str
    state: TaskState = TaskState.PENDING
    created: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    attempts: int = 0
    error: dict[str, str] | None = None
    upstream: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    cache_key: str | None = None
    result_key: str | None = None
    map_index: int | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601 strings)."""
        data = asdict(self)
        data["state"] = str(self.state)
        for name in ("created", "start_time", "end_time"):
            value = data[name]
            data[name] = value.isoformat() if value is not None else None
        return data


@dataclass(frozen=True)
class CacheRecord:
    """A cache key's persisted result, valid until ``expires_at`` (``None``: for ever)."""

    key: str
    result_key: str
    expires_at: datetime | None = None

    def valid_at(self, when: datetime) -> bool:
        return self.expires_at is None or when < self.expires_at
