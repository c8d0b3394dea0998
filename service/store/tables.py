"""SQLAlchemy Core tables for :class:`service.store.sql.SqlStore`."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC, returned aware, so every backend sorts and compares alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    Column("role", String(20), nullable=False, server_default="admin"),
    Column("pools", JSON),
)

work_pools = Table(
    "work_pools",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("type", String(50), nullable=False),
    Column("config", JSON, nullable=False),
    Column("concurrency_limit", Integer),
    Column("paused", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

deployments = Table(
    "deployments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("flow_name", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    Column("work_pool", String(100), nullable=False, index=True),
    Column("concurrency_limit", Integer),
    Column("paused", Boolean, nullable=False),
    Column("doc", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("flow_name", "name", name="uq_deployment_name"),
)

schedules = Table(
    "schedules",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("deployment_id", String(36), nullable=False, index=True),
    Column("doc", JSON, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("next_fire_at", UTCDateTime),
    Index("ix_schedules_due", "next_fire_at"),
)

flow_runs = Table(
    "flow_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("deployment_id", String(36)),
    Column("flow_name", String(200), nullable=False),
    Column("deployment_name", String(200), nullable=False),
    Column("work_pool", String(100), nullable=False),
    Column("state_type", String(20), nullable=False),
    Column("state_name", String(50), nullable=False),
    Column("state_message", Text),
    Column("state_timestamp", UTCDateTime, nullable=False),
    Column("parameters", JSON, nullable=False),
    Column("job_variables", JSON, nullable=False),
    Column("idempotency_key", String(200)),
    Column("schedule_id", String(80)),
    Column("auto_scheduled", Boolean, nullable=False),
    Column("expected_start", UTCDateTime, nullable=False),
    Column("start_time", UTCDateTime),
    Column("end_time", UTCDateTime),
    Column("run_count", Integer, nullable=False),
    Column("infra", JSON),
    Column("result", JSON),
    Column("error", JSON),
    Column("heartbeat_at", UTCDateTime),
    Column("tags", JSON, nullable=False),
    Column("token_hash", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("name", String(100), nullable=False, server_default=""),
    #: When the run last started, or left SCHEDULED if it never ran (base.began_at).
    Column("began_at", UTCDateTime),
    Index("ix_runs_name", "name"),
    Index("ix_runs_began", "began_at", "id"),
    Index("ix_runs_state_start", "state_type", "expected_start"),
    Index("ix_runs_start_id", "expected_start", "id"),
    Index("ix_runs_deployment_start", "deployment_id", "expected_start", "id"),
    Index("ix_runs_pool_state", "work_pool", "state_type"),
    Index("ix_runs_deployment_state", "deployment_id", "state_type"),
    Index("uq_runs_idempotency", "deployment_id", "idempotency_key", unique=True),
)

state_history = Table(
    "state_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(36), nullable=False, index=True),
    Column("type", String(20), nullable=False),
    Column("name", String(50), nullable=False),
    Column("message", Text),
    Column("timestamp", UTCDateTime, nullable=False),
)

teardowns = Table(
    "teardowns",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(36), nullable=False),
    Column("work_pool", String(100), nullable=False),
    Column("infra", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

logs = Table(
    "logs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(36), nullable=False),
    Column("timestamp", UTCDateTime, nullable=False),
    Column("level", String(20), nullable=False),
    Column("message", Text, nullable=False),
    Column("stream", String(20), nullable=False),
    Column("logger", String(200)),
    Column("task_run_id", String(64)),  # the SDK task run that wrote the line, if any
    Index("ix_logs_run", "run_id", "id"),
    Index("ix_logs_time", "timestamp"),
)

#: Log batches stored, by (run, attempt, seq): a resent batch is not stored twice.
log_batches = Table(
    "log_batches",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("seq", Integer, primary_key=True),
)

#: Per run: how much of its log is stored and dropped (the caps), and the marker line.
log_usage = Table(
    "log_usage",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("lines", Integer, nullable=False),
    Column("bytes", Integer, nullable=False),
    Column("dropped_lines", Integer, nullable=False),
    Column("dropped_bytes", Integer, nullable=False),
    Column("marker_id", Integer),
)

# A task run's latest snapshot (the SDK reports whole snapshots; the JSON is the record).
task_runs = Table(
    "task_runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("created", UTCDateTime()),
    Column("data", JSON, nullable=False),
)

# Task cache records: a cache key -> the result it names, until it expires.
cache_records = Table(
    "cache_records",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("result_key", String(500), nullable=False),
    Column("expires_at", UTCDateTime()),
)

# Tag concurrency limits and the slot leases task runs hold against them.
concurrency_limits = Table(
    "concurrency_limits",
    metadata,
    Column("tag", String(100), primary_key=True),
    Column("limit", Integer, nullable=False),
)
slot_leases = Table(
    "slot_leases",
    metadata,
    Column("tag", String(100), primary_key=True),
    Column("holder", String(200), primary_key=True),
    Column("expires_at", UTCDateTime(), nullable=False),
)

# Blocks: user block types, and documents whose secret fields are Fernet tokens only.
block_types = Table(
    "block_types",
    metadata,
    Column("slug", String(63), primary_key=True),
    Column("doc", JSON, nullable=False),
)
block_documents = Table(
    "block_documents",
    metadata,
    Column("type", String(63), primary_key=True),
    Column("name", String(100), primary_key=True),
    Column("doc", JSON, nullable=False),
    Column("secrets", JSON, nullable=False),
    Column("version", Integer, nullable=False),
)

# Events, newest first by (occurred, id); ``doc`` is the whole event, ``labels`` the
# primary resource's labels (filtered in SQL), ``expires_at`` when retention drops it.
events = Table(
    "events",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("occurred", UTCDateTime(), nullable=False),
    Column("name", String(200), nullable=False),
    Column("resource_id", String(300), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("doc", JSON, nullable=False),
    Column("expires_at", UTCDateTime()),
    Index("ix_events_occurred", "occurred", "id"),
    Index("ix_events_resource", "resource_id", "occurred"),
    Index("ix_events_name", "name", "occurred"),
    Index("ix_events_expires", "expires_at"),
)

# Webhooks: the slug is the unguessable URL; ``secret`` checks HMAC signatures.
webhooks = Table(
    "webhooks",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("slug", String(64), nullable=False, unique=True),
    Column("template", Text, nullable=False),
    Column("signature", String(20), nullable=False),
    Column("secret", Text),
    Column("created_at", UTCDateTime(), nullable=False),
)

# Automations (service.automations): ``doc`` is the whole automation. A firing's ``key``
# (automation id + trigger instance) is written once: its primary key makes a second
# firing of one instance fail. Jobs are the outbox of actions the tick works, by due_at.
automations = Table(
    "automations",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("doc", JSON, nullable=False),
)
automation_firings = Table(
    "automation_firings",
    metadata,
    Column("key", String(400), primary_key=True),
    Column("fired_at", UTCDateTime(), nullable=False),
    Index("ix_automation_firings_fired", "fired_at"),
)
automation_jobs = Table(
    "automation_jobs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("due_at", UTCDateTime(), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("doc", JSON, nullable=False),
    Index("ix_automation_jobs_due", "due_at"),
)
# Proactive triggers' due index: per automation and ``for_each`` value, when the expected
# event must arrive by; the tick reads the rows past due through ``ix_automation_due``.
automation_due = Table(
    "automation_due",
    metadata,
    Column("automation_id", String(64), primary_key=True),
    Column("instance", String(300), primary_key=True),
    Column("due_at", UTCDateTime(), nullable=False),
    Index("ix_automation_due", "due_at"),
)
