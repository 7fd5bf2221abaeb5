"""api key spend

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 01:43:42.881948
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (no table rebuild on SQLite): existing keys start at zero spent.
    op.add_column("api_keys", sa.Column("spent_nanousd", sa.BigInteger(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("spent_nanousd")
