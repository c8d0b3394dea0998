"""Domain records shared by the store, the API and the orchestration code."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from provisioners.base import InfraRef
from service.schedules import Schedule
from service.states import StateType

Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
JsonDict = dict[str, Any]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CatchupPolicy(StrEnum):
    ALL = "all"
    LATEST = "latest"
    NONE = "none"


class LocalSource(Strict):
    type: Literal["local"] = "local"
    path: str = Field(min_length=1, description="Absolute directory holding the flow code")

    @field_validator("path")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not PurePosixPath(v).is_absolute():
            raise ValueError("must be an absolute path")
        return v


class GitSource(Strict):
    type: Literal["git"] = "git"
    url: str = Field(min_length=1)
    ref: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^(https?://|ssh://|git@|file://)", v):
            raise ValueError("must be an http(s), ssh, git@ or file:// URL")
        return v


class ImageSource(Strict):
    """The code is baked into the image the runner starts in."""

    type: Literal["image"] = "image"


Source = Annotated[LocalSource | GitSource | ImageSource, Field(discriminator="type")]

_ENTRYPOINT = re.compile(r"^(?P<path>[^:]+\.py):(?P<func>[A-Za-z_][A-Za-z0-9_]*)$")


def check_entrypoint(value: str) -> str:
    """Validate ``path/to/file.py:function``: relative, no ``..``, a Python identifier."""
    match = _ENTRYPOINT.match(value)
    if not match:
        raise ValueError("must look like 'path/to/file.py:function'")
    path = PurePosixPath(match["path"])
    if path.is_absolute() or ".." in path.parts:
        raise ValueError("the file must be a relative path inside the source (no '..')")
    return value


class WorkPool(Strict):
    name: str
    type: str
    config: JsonDict = Field(default_factory=dict)
    concurrency_limit: int | None = None
    paused: bool = False
    created_at: datetime
    updated_at: datetime


class Deployment(Strict):
    id: str
    name: str
    flow_name: str
    entrypoint: str
    work_pool: str
    source: Source
    parameters: JsonDict = Field(default_factory=dict)
    parameter_schema: JsonDict | None = None
    job_variables: JsonDict = Field(default_factory=dict)
    schedules: list[Schedule] = Field(default_factory=list)
    catchup: CatchupPolicy = CatchupPolicy.LATEST
    paused: bool = False
    concurrency_limit: int | None = None
    retries: int = 0
    retry_delay_seconds: int = 0
    tags: list[str] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime


class ScheduleRecord(Strict):
    """One schedule of one deployment and its cursor: the next fire time not yet materialised."""

    id: str
    deployment_id: str
    schedule: Schedule
    next_fire_at: datetime | None
    active: bool = True


class StateRecord(Strict):
    type: StateType
    name: str
    message: str | None = None
    timestamp: datetime


class FlowRun(Strict):
    id: str
    deployment_id: str | None
    flow_name: str
    deployment_name: str
    work_pool: str
    state: StateRecord
    parameters: JsonDict = Field(default_factory=dict)
    job_variables: JsonDict = Field(default_factory=dict)
    idempotency_key: str | None = None
    schedule_id: str | None = None
    auto_scheduled: bool = False
    expected_start: datetime
    start_time: datetime | None = None
    end_time: datetime | None = None
    run_count: int = 0
    infra: InfraRef | None = None
    result: Any = None
    error: JsonDict | None = None
    heartbeat_at: datetime | None = None
    tags: list[str] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime
    #: Hash of the current attempt's run token; never leaves the service.
    token_hash: str | None = Field(default=None, exclude=True, repr=False)


class LogLine(Strict):
    id: int = 0
    run_id: str
    timestamp: datetime
    level: str = "INFO"
    message: str
    stream: str = "stdout"
    logger: str | None = None


class ApiKey(Strict):
    id: str
    name: str
    key_hash: str = Field(exclude=True, repr=False)
    created_at: datetime
    revoked_at: datetime | None = None


class Teardown(Strict):
    id: int
    run_id: str
    work_pool: str
    infra: InfraRef
    created_at: datetime


TaskRunState = Literal["PENDING", "RUNNING", "RETRYING", "COMPLETED", "FAILED", "CACHED"]
_TASK_ID = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]


class TaskRun(Strict):
    """The latest snapshot of one task run of a flow run, as the SDK reports it."""

    id: _TASK_ID
    task_key: Annotated[str, Field(max_length=500)]
    name: Annotated[str, Field(max_length=300)]
    state: TaskRunState
    created: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    attempts: Annotated[int, Field(ge=0)] = 0
    error: dict[str, Annotated[str, Field(max_length=20_000)]] | None = None
    upstream: Annotated[list[_TASK_ID], Field(max_length=1000)] = []
    tags: Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=50)] = []
    cache_key: Annotated[str, Field(max_length=128)] | None = None
    result_key: Annotated[str, Field(max_length=500)] | None = None
    map_index: Annotated[int, Field(ge=0)] | None = None
    flow_run_id: str | None = None


class CacheRecord(Strict):
    """A task cache key's persisted result; unusable from ``expires_at`` on."""

    key: Annotated[str, Field(pattern=r"^[0-9a-f]{16,128}$|^[A-Za-z0-9._:-]{1,128}$")]
    result_key: Annotated[str, Field(min_length=1, max_length=500)]
    expires_at: datetime | None = None


_TAG = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:/-]+$")]


class ConcurrencyLimit(Strict):
    """At most ``limit`` task runs tagged ``tag`` hold a slot at once, across runs."""

    tag: _TAG
    limit: Annotated[int, Field(ge=1, le=100_000)]
    active_slots: int = 0
