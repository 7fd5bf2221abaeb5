"""weekly pattern cells per month

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-22 06:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

SLIM = ("requests", "total_input_tokens", "total_output_tokens", "cost_nanousd")


def upgrade() -> None:
    op.create_table(
        "usage_month_hour_cells",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("weekday", sa.SmallInteger(), nullable=False),
        sa.Column("hour", sa.SmallInteger(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in SLIM),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_usage_month_hour_cells_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "organization_id", "month", "weekday", "hour", name=op.f("pk_usage_month_hour_cells")
        ),
    )
    # Existing usage: the cells are the sums of the hourly rollup already there (UTC, Monday = 0).
    if op.get_bind().dialect.name == "postgresql":
        utc = "(hour AT TIME ZONE 'UTC')"
        month, weekday = f"date_trunc('month', {utc})::date", f"extract(isodow FROM {utc})::int - 1"
        hour = f"extract(hour FROM {utc})::int"
    else:  # stored as text "YYYY-MM-DD HH:MM:SS.ffffff"; %w counts from Sunday
        month, weekday = "substr(hour, 1, 8) || '01'", "(CAST(strftime('%w', hour) AS INTEGER) + 6) % 7"
        hour = "CAST(substr(hour, 12, 2) AS INTEGER)"
    op.execute(
        f"INSERT INTO usage_month_hour_cells (organization_id, month, weekday, hour, {', '.join(SLIM)}) "
        f"SELECT organization_id, {month}, {weekday}, {hour}, {', '.join(f'sum({c})' for c in SLIM)} "
        "FROM usage_hours GROUP BY 1, 2, 3, 4"
    )


def downgrade() -> None:
    op.drop_table("usage_month_hour_cells")
