"""API key roles: ``api_keys.role`` and ``api_keys.pools``

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

Keys made before roles existed could do everything: they become ``admin`` keys (the
column's server default), with no pool list.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "api_keys",
        sa.Column("role", sa.String(length=20), nullable=False, server_default="admin"),
    )
    op.add_column("api_keys", sa.Column("pools", sa.JSON()))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("pools")
        batch.drop_column("role")
