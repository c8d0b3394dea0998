"""events: the ``events`` table and its indexes, ``webhooks``

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

New table only: one row per event (the whole event in ``doc``; the primary resource's
``labels`` for filtering; ``expires_at`` for retention), indexed for newest-first listing
by time, by resource id and by name, and for expiry; one row per webhook (its unique
slug is its URL).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("occurred", sa.DateTime(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("resource_id", sa.String(length=300), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("doc", sa.JSON(), nullable=False),
        sa.Column("expires_at", sa.DateTime()),
    )
    op.create_index("ix_events_occurred", "events", ["occurred", "id"])
    op.create_index("ix_events_resource", "events", ["resource_id", "occurred"])
    op.create_index("ix_events_name", "events", ["name", "occurred"])
    op.create_index("ix_events_expires", "events", ["expires_at"])
    op.create_table(
        "webhooks",
        sa.Column("name", sa.String(length=100), primary_key=True),
        sa.Column("slug", sa.String(length=64), nullable=False, unique=True),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(length=20), nullable=False),
        sa.Column("secret", sa.Text()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("webhooks")
    op.drop_table("events")
