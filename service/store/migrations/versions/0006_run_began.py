"""when a run began: ``flow_runs.began_at`` and its index, for "most recent runs" listings

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

``began_at`` is when the run last started (``RUNNING``), or, for one that never ran, when
it left ``SCHEDULED`` (claimed, cancelled, crashed); empty while it has not begun. Rows
made before this revision are filled from what they hold: ``start_time``, else the state's
timestamp for a run no longer ``SCHEDULED``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("flow_runs", sa.Column("began_at", sa.DateTime(), nullable=True))
    op.execute(
        "UPDATE flow_runs SET began_at = COALESCE(start_time, "
        "CASE WHEN state_type <> 'SCHEDULED' THEN state_timestamp END)"
    )
    op.create_index("ix_runs_began", "flow_runs", ["began_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_runs_began", table_name="flow_runs")
    with op.batch_alter_table("flow_runs") as batch:
        batch.drop_column("began_at")
