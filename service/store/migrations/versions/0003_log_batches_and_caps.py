"""logs delivered exactly once and capped: ``log_batches``, ``log_usage``, ``ix_logs_time``

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

``log_batches`` records each runner batch stored, by (run, attempt, seq), so a resent
batch is not stored twice; ``log_usage`` keeps each run's stored and dropped line and byte
counts for the caps, with the id of its marker line; ``ix_logs_time`` serves the deletion
of logs past their retention. Existing logs count from zero against the caps.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_logs_time", "logs", ["timestamp"])
    op.create_table(
        "log_batches",
        sa.Column("run_id", sa.String(length=36), primary_key=True),
        sa.Column("attempt", sa.Integer(), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
    )
    op.create_table(
        "log_usage",
        sa.Column("run_id", sa.String(length=36), primary_key=True),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("dropped_lines", sa.Integer(), nullable=False),
        sa.Column("dropped_bytes", sa.Integer(), nullable=False),
        sa.Column("marker_id", sa.Integer()),
    )


def downgrade() -> None:
    op.drop_table("log_usage")
    op.drop_table("log_batches")
    op.drop_index("ix_logs_time", table_name="logs")
