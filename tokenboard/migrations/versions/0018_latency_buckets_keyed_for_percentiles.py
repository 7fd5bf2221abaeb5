"""latency histograms keyed so that a range's buckets come out already grouped by model and bucket

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 19:30:00.000000

The usage page reads each model's latency percentiles from the histograms of the range: the full months
from ``usage_month_latency_buckets``, the days at the edges from ``usage_latency_buckets``, summed per model
and bucket. Both tables were keyed by time first (organization, month or day, model, bucket), so summing
per model and bucket sorted every row read: at 10M events on SQLite a 30-day range read ~22k day rows and
took 20-28 ms, most of it the sort.

``usage_month_latency_buckets`` is now keyed (organization, model, bucket, month): every month of the
organization is read in the grouping's order (a year is ~12k rows). ``usage_latency_buckets`` gains the
month of its day and is keyed (organization, month, model, bucket, day): the days of one month are read in
the grouping's order, so an edge inside a month is one range of the key, summed as it streams (decision
0003, "2026-12-06: latency histograms keyed for the percentiles").
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

DAYS, MONTHS = "usage_latency_buckets", "usage_month_latency_buckets"
DAY_KEY = {
    True: ["organization_id", "month", "model_id", "bucket", "day"],
    False: ["organization_id", "day", "model_id", "bucket"],
}
MONTH_KEY = {
    True: ["organization_id", "model_id", "bucket", "month"],
    False: ["organization_id", "month", "model_id", "bucket"],
}


def _postgresql(forward: bool) -> None:
    if forward:
        op.add_column(DAYS, sa.Column("month", sa.Date(), nullable=True))
        op.execute(f"UPDATE {DAYS} SET month = date_trunc('month', day)::date")
        op.alter_column(DAYS, "month", nullable=False)
    for table, key in ((DAYS, DAY_KEY[forward]), (MONTHS, MONTH_KEY[forward])):
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}, "
            f"ADD CONSTRAINT pk_{table} PRIMARY KEY ({', '.join(key)})"
        )
    if not forward:
        op.drop_column(DAYS, "month")


def _days_table(name: str, forward: bool) -> None:
    op.create_table(
        name,
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        *([sa.Column("month", sa.Date(), nullable=False)] if forward else []),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f(f"fk_{DAYS}_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(*DAY_KEY[forward], name=op.f(f"pk_{DAYS}")),
        sqlite_with_rowid=False,
    )


def _sqlite(forward: bool) -> None:
    # A new day table filled from the old one (dates are stored as "YYYY-MM-DD"), then put in its place.
    _days_table(f"{DAYS}_0018", forward)
    month = ["substr(day, 1, 8) || '01'"] if forward else []
    columns = ", ".join(["organization_id", *month, "day", "model_id", "bucket", "requests"])
    op.execute(f"INSERT INTO {DAYS}_0018 SELECT {columns} FROM {DAYS}")
    op.drop_table(DAYS)
    op.rename_table(f"{DAYS}_0018", DAYS)
    with op.batch_alter_table(MONTHS, recreate="always", table_kwargs={"sqlite_with_rowid": False}) as batch:
        batch.drop_constraint(f"pk_{MONTHS}", type_="primary")
        batch.create_primary_key(f"pk_{MONTHS}", MONTH_KEY[forward])


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _postgresql(forward=True)
    else:
        _sqlite(forward=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _postgresql(forward=False)
    else:
        _sqlite(forward=False)
