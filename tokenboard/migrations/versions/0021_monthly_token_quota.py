"""monthly usage quota in tokens

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 19:30:00.000000

``organizations.monthly_usage_quota_tokens``: the tokens included each calendar month (UTC), input +
output as the usage page counts them, beside the USD quota of 0008 (either, both or neither). Like that
one it is a view on the usage page, never enforced by the gateway. The downgrade drops the setting.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain nullable ADD COLUMN (no table rebuild on SQLite): no token quota until an admin sets one.
    op.add_column("organizations", sa.Column("monthly_usage_quota_tokens", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    # A plain DROP COLUMN on both (SQLite has it since 3.35), not a batch copy of the whole table.
    op.drop_column("organizations", "monthly_usage_quota_tokens")
