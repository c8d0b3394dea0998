"""the task layer: ``task_runs``, ``cache_records``, ``concurrency_limits``, ``slot_leases``

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

New tables only: a task run's latest snapshot per (flow run, task run), task cache records
with their expiry, tag concurrency limits and the expiring slot leases held against them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "task_runs",
        sa.Column("run_id", sa.String(length=64), primary_key=True),
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("created", sa.DateTime()),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    op.create_table(
        "cache_records",
        sa.Column("key", sa.String(length=128), primary_key=True),
        sa.Column("result_key", sa.String(length=500), nullable=False),
        sa.Column("expires_at", sa.DateTime()),
    )
    op.create_table(
        "concurrency_limits",
        sa.Column("tag", sa.String(length=100), primary_key=True),
        sa.Column("limit", sa.Integer(), nullable=False),
    )
    op.create_table(
        "slot_leases",
        sa.Column("tag", sa.String(length=100), primary_key=True),
        sa.Column("holder", sa.String(length=200), primary_key=True),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in ("slot_leases", "concurrency_limits", "cache_records", "task_runs"):
        op.drop_table(table)
