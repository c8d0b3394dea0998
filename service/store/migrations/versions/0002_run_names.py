"""run names: ``flow_runs.name`` and its index

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03

Runs made before this revision keep an empty name; the store derives their name from the
run id when it reads them (``service.run_names.run_name``), so they are shown named, but a
filter by name finds only runs named since.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "flow_runs",
        sa.Column("name", sa.String(length=100), nullable=False, server_default=""),
    )
    op.create_index("ix_runs_name", "flow_runs", ["name"])


def downgrade() -> None:
    op.drop_index("ix_runs_name", table_name="flow_runs")
    with op.batch_alter_table("flow_runs") as batch:
        batch.drop_column("name")
