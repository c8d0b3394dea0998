"""baseline: the schema as released in 0.1.0

Revision ID: 0001
Revises:
Create Date: 2026-12-03

Frozen: this is what 0.1.0's ``create_all`` made, written out so that later changes to
``service/store/tables.py`` cannot change it. Times are naive UTC ``DateTime`` columns
(the code's ``UTCDateTime`` stores them so).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _utc(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(length=100), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=40), primary_key=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False, unique=True),
        _utc("created_at", nullable=False),
        _utc("revoked_at"),
    )
    op.create_table(
        "work_pools",
        sa.Column("name", sa.String(length=100), primary_key=True),
        sa.Column("type", sa.String(length=50), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("concurrency_limit", sa.Integer(), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        _utc("created_at", nullable=False),
        _utc("updated_at", nullable=False),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("flow_name", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("work_pool", sa.String(length=100), nullable=False),
        sa.Column("concurrency_limit", sa.Integer(), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("doc", sa.JSON(), nullable=False),
        _utc("created_at", nullable=False),
        _utc("updated_at", nullable=False),
        sa.UniqueConstraint("flow_name", "name", name="uq_deployment_name"),
    )
    op.create_index("ix_deployments_work_pool", "deployments", ["work_pool"])
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(length=80), primary_key=True),
        sa.Column("deployment_id", sa.String(length=36), nullable=False),
        sa.Column("doc", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        _utc("next_fire_at"),
    )
    op.create_index("ix_schedules_deployment_id", "schedules", ["deployment_id"])
    op.create_index("ix_schedules_due", "schedules", ["next_fire_at"])
    op.create_table(
        "flow_runs",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("deployment_id", sa.String(length=36), nullable=True),
        sa.Column("flow_name", sa.String(length=200), nullable=False),
        sa.Column("deployment_name", sa.String(length=200), nullable=False),
        sa.Column("work_pool", sa.String(length=100), nullable=False),
        sa.Column("state_type", sa.String(length=20), nullable=False),
        sa.Column("state_name", sa.String(length=50), nullable=False),
        sa.Column("state_message", sa.Text(), nullable=True),
        _utc("state_timestamp", nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("job_variables", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("schedule_id", sa.String(length=80), nullable=True),
        sa.Column("auto_scheduled", sa.Boolean(), nullable=False),
        _utc("expected_start", nullable=False),
        _utc("start_time"),
        _utc("end_time"),
        sa.Column("run_count", sa.Integer(), nullable=False),
        sa.Column("infra", sa.JSON(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        _utc("heartbeat_at"),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        _utc("created_at", nullable=False),
        _utc("updated_at", nullable=False),
    )
    op.create_index("ix_runs_state_start", "flow_runs", ["state_type", "expected_start"])
    op.create_index("ix_runs_start_id", "flow_runs", ["expected_start", "id"])
    op.create_index(
        "ix_runs_deployment_start", "flow_runs", ["deployment_id", "expected_start", "id"]
    )
    op.create_index("ix_runs_pool_state", "flow_runs", ["work_pool", "state_type"])
    op.create_index("ix_runs_deployment_state", "flow_runs", ["deployment_id", "state_type"])
    op.create_index(
        "uq_runs_idempotency", "flow_runs", ["deployment_id", "idempotency_key"], unique=True
    )
    op.create_table(
        "state_history",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        _utc("timestamp", nullable=False),
    )
    op.create_index("ix_state_history_run_id", "state_history", ["run_id"])
    op.create_table(
        "teardowns",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("work_pool", sa.String(length=100), nullable=False),
        sa.Column("infra", sa.JSON(), nullable=False),
        _utc("created_at", nullable=False),
    )
    op.create_table(
        "logs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        _utc("timestamp", nullable=False),
        sa.Column("level", sa.String(length=20), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("stream", sa.String(length=20), nullable=False),
        sa.Column("logger", sa.String(length=200), nullable=True),
    )
    op.create_index("ix_logs_run", "logs", ["run_id", "id"])


def downgrade() -> None:
    for table in (
        "logs",
        "teardowns",
        "state_history",
        "flow_runs",
        "schedules",
        "deployments",
        "work_pools",
        "api_keys",
        "meta",
    ):
        op.drop_table(table)
