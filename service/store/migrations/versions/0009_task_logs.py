"""log lines attributed to task runs: ``logs.task_run_id``

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

A nullable column: lines written before (and lines outside any task) have none.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("logs", sa.Column("task_run_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("logs") as batch:
        batch.drop_column("task_run_id")
