"""blocks: ``block_types`` and ``block_documents`` (secret fields as Fernet tokens)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

New tables only. Deployments' new ``blocks`` list lives in their JSON ``doc`` (read
with a default of ``[]``), so the deployments table does not change.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "block_types",
        sa.Column("slug", sa.String(length=63), primary_key=True),
        sa.Column("doc", sa.JSON(), nullable=False),
    )
    op.create_table(
        "block_documents",
        sa.Column("type", sa.String(length=63), primary_key=True),
        sa.Column("name", sa.String(length=100), primary_key=True),
        sa.Column("doc", sa.JSON(), nullable=False),
        sa.Column("secrets", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    for table in ("block_documents", "block_types"):
        op.drop_table(table)
