"""automations: ``automations``, ``automation_firings`` (idempotency keys), ``automation_jobs``

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

New tables only: one row per automation (the whole automation in ``doc``), one per
firing (its key is the primary key, so a trigger instance fires once), and the outbox of
actions the tick works, indexed by when each is due.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "automations",
        sa.Column("name", sa.String(length=100), primary_key=True),
        sa.Column("doc", sa.JSON(), nullable=False),
    )
    op.create_table(
        "automation_firings",
        sa.Column("key", sa.String(length=400), primary_key=True),
        sa.Column("fired_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "automation_jobs",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("doc", sa.JSON(), nullable=False),
    )
    op.create_index("ix_automation_jobs_due", "automation_jobs", ["due_at"])


def downgrade() -> None:
    for table in ("automation_jobs", "automation_firings", "automations"):
        op.drop_table(table)
