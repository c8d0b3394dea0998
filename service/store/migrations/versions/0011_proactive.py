"""proactive triggers: ``automation_due`` (the due index) and an index on firing times

Revision ID: 0011_proactive
Revises: 0010
Create Date: 2026-12-03

A new table (per proactive automation and ``for_each`` value, when the expected event
must arrive by, indexed by that time) and an index on ``automation_firings.fired_at`` so
the tick's housekeeping purges expired firing keys a bounded batch at a time.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_proactive"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "automation_due",
        sa.Column("automation_id", sa.String(length=64), primary_key=True),
        sa.Column("instance", sa.String(length=300), primary_key=True),
        sa.Column("due_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_automation_due", "automation_due", ["due_at"])
    op.create_index("ix_automation_firings_fired", "automation_firings", ["fired_at"])


def downgrade() -> None:
    op.drop_index("ix_automation_firings_fired", table_name="automation_firings")
    op.drop_table("automation_due")
