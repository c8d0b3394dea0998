"""Domain records shared by the store, the API and the orchestration code."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from provisioners.base import InfraRef
from service.schedules import Schedule
from service.vocabulary import StateType

#: How deeply user JSON (parameters, schemas, job variables, pool config) may nest. Far
#: below where serialising it would fail (pydantic stops at 255 levels).
MAX_JSON_DEPTH = 64
#: The highest concurrency limit a pool or deployment may set (beyond it, none is needed).
MAX_CONCURRENCY_LIMIT = 1_000_000


def json_depth(value: Any) -> int:
    """How many containers deep ``value`` nests (iterative: safe on any depth)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _shallow(value: Any) -> Any:
    if json_depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"nested more than {MAX_JSON_DEPTH} levels deep")
    return value


#: User JSON on the way in: nested at most ``MAX_JSON_DEPTH`` levels.
BoundedJson = Annotated[Any, AfterValidator(_shallow)]
BoundedDict = Annotated[dict[str, Any], AfterValidator(_shallow)]

Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
JsonDict = dict[str, Any]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _drop_null(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """In a PATCH model's JSON Schema, a field that may not be null is not nullable."""
    nullable: frozenset[str] = getattr(model, "nullable", frozenset())
    for name, prop in schema.get("properties", {}).items():
        options = prop.get("anyOf")
        if name in nullable or not options:
            continue
        rest = [o for o in options if o != {"type": "null"}]
        prop.pop("anyOf")
        prop.pop("default", None)
        if len(rest) == 1:
            prop.update(rest[0])
        else:
            prop["anyOf"] = rest


class Patch(Strict):
    """A PATCH body: fields left out stay as they are; ``null`` clears only the fields in
    ``nullable`` and is refused (422 naming the field) on every other one."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_drop_null)
    nullable: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.nullable:
            raise ValueError("may not be null; leave it out to keep it as it is")
        return value


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
    timeout_seconds: int | None = None
    #: The blocks (``type/name``) its flow code may load and its job variables name.
    blocks: list[str] = Field(default_factory=list)
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


RunName = Annotated[
    str, Field(max_length=100, pattern=r"^$|^[a-z0-9][a-z0-9_.\-]*$", examples=["crimson-otter"])
]


class FlowRun(Strict):
    id: str
    #: A human name; when not given, one derived from the id (see service.run_names).
    name: RunName = ""
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

    @model_validator(mode="after")
    def _default_name(self) -> FlowRun:
        if not self.name:
            from service.run_names import run_name

            self.name = run_name(self.id)
        return self


class LogLine(Strict):
    id: int = 0
    run_id: str
    timestamp: datetime
    level: str = "INFO"
    message: str
    stream: str = "stdout"
    logger: str | None = None
    #: The SDK task run that wrote the line (None: the flow itself, or no SDK).
    task_run_id: str | None = None


class Role(StrEnum):
    """What an API key may do; each role includes everything the weaker ones may."""

    VIEWER = "viewer"  # read everything
    DEPLOYER = "deployer"  # + deployments and runs (in its pools, if it has a list)
    ADMIN = "admin"  # + work pools (their config runs host commands) and every key

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]

    def includes(self, other: Role) -> bool:
        return self.rank >= other.rank


_ROLE_RANK = {Role.VIEWER: 0, Role.DEPLOYER: 1, Role.ADMIN: 2}


class ApiKey(Strict):
    id: str
    name: str
    key_hash: str = Field(exclude=True, repr=False)
    #: Keys stored before roles existed read back as admin: they could do everything.
    role: Role = Role.ADMIN
    #: A deployer's pools; ``None``: every pool. Only deployers carry a list.
    pools: list[str] | None = None
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def limited(self) -> bool:
        """Whether this key may use some pools only (a deployer with a pool list)."""
        return self.role == Role.DEPLOYER and self.pools is not None

    def may_use_pool(self, pool: str) -> bool:
        """Whether this key may deploy to, run in and cancel runs of ``pool``."""
        return not self.limited or pool in (self.pools or [])


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
