"""monthly usage quota

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 04:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain nullable ADD COLUMN (no table rebuild on SQLite): no quota until an admin sets one.
    op.add_column("organizations", sa.Column("monthly_usage_quota_nanousd", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_column("monthly_usage_quota_nanousd")
