"""monthly rollups per user: models, weekly pattern cells and dimension values

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 20:30:00.000000

A member's own usage page over a year read a year of that member's days (model popularity: ~12k rows of
day x model at 10M events), hours (~8k) and dimension days: the org-wide page had monthly tables, the
member's had none. These three tables are the monthly counterparts of ``usage_day_user_models``,
``usage_hour_users`` and ``usage_dimension_user_days``, keyed by the user first, and are filled here from
them (decision 0003, "2026-12-03: monthly rollups per user").
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

SLIM = ("requests", "total_input_tokens", "total_output_tokens", "cost_nanousd")
FULL = (
    "requests",
    "errors",
    "cancelled",
    "streamed",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_nanousd",
    "latency_ms_sum",
)


def _table(name: str, key: list[tuple[str, Any]], metrics: tuple[str, ...], *extra: sa.Column[Any]) -> None:
    op.create_table(
        name,
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        *(sa.Column(column, kind, nullable=False) for column, kind in key),
        *extra,
        *(sa.Column(metric, sa.BigInteger(), nullable=False) for metric in metrics),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f(f"fk_{name}_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", *(c for c, _ in key), name=op.f(f"pk_{name}")),
        sqlite_with_rowid=False,
    )


def upgrade() -> None:
    _table(
        "usage_month_user_models",
        [("user_id", sa.Uuid()), ("month", sa.Date()), ("model_id", sa.String(200))],
        FULL,
        sa.Column("provider_id", sa.String(80), nullable=False),
    )
    _table(
        "usage_month_user_hour_cells",
        [
            ("user_id", sa.Uuid()),
            ("month", sa.Date()),
            ("weekday", sa.SmallInteger()),
            ("hour", sa.SmallInteger()),
        ],
        SLIM,
    )
    _table(
        "usage_month_dimension_users",
        [
            ("dimension", sa.String(20)),
            ("user_id", sa.Uuid()),
            ("month", sa.Date()),
            ("value", sa.String(200)),
        ],
        SLIM,
    )
    # Existing usage: each month is the sum of the daily (hourly) per-user rows already rolled up.
    if op.get_bind().dialect.name == "postgresql":
        month_of_day = "date_trunc('month', day)::date"
        utc = "(hour AT TIME ZONE 'UTC')"
        month_of_hour, weekday = f"date_trunc('month', {utc})::date", f"extract(isodow FROM {utc})::int - 1"
        hour = f"extract(hour FROM {utc})::int"
    else:  # dates stored as "YYYY-MM-DD", hours as "YYYY-MM-DD HH:MM:SS.ffffff"; %w counts from Sunday
        month_of_day = month_of_hour = "substr({}, 1, 8) || '01'"
        month_of_day, month_of_hour = month_of_day.format("day"), month_of_hour.format("hour")
        weekday = "(CAST(strftime('%w', hour) AS INTEGER) + 6) % 7"
        hour = "CAST(substr(hour, 12, 2) AS INTEGER)"
    full, slim = ", ".join(FULL), ", ".join(SLIM)
    sum_full, sum_slim = ", ".join(f"sum({c})" for c in FULL), ", ".join(f"sum({c})" for c in SLIM)
    op.execute(
        "INSERT INTO usage_month_user_models "
        f"(organization_id, user_id, month, model_id, provider_id, {full}) "
        f"SELECT organization_id, user_id, {month_of_day}, model_id, min(provider_id), {sum_full} "
        "FROM usage_day_user_models GROUP BY 1, 2, 3, 4"
    )
    op.execute(
        f"INSERT INTO usage_month_user_hour_cells (organization_id, user_id, month, weekday, hour, {slim}) "
        f"SELECT organization_id, user_id, {month_of_hour}, {weekday}, {hour}, {sum_slim} "
        "FROM usage_hour_users GROUP BY 1, 2, 3, 4, 5"
    )
    op.execute(
        "INSERT INTO usage_month_dimension_users "
        f"(organization_id, dimension, user_id, month, value, {slim}) "
        f"SELECT organization_id, dimension, user_id, {month_of_day}, value, {sum_slim} "
        "FROM usage_dimension_user_days GROUP BY 1, 2, 3, 4, 5"
    )


def downgrade() -> None:
    for name in ("usage_month_dimension_users", "usage_month_user_hour_cells", "usage_month_user_models"):
        op.drop_table(name)
