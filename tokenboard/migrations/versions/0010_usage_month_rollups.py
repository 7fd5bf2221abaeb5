"""monthly usage rollups

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22 04:15:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

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
SLIM = ("requests", "total_input_tokens", "total_output_tokens", "cost_nanousd")


def _metrics(names: tuple[str, ...]) -> list[sa.Column[int]]:
    return [sa.Column(name, sa.BigInteger(), nullable=False) for name in names]


def _org_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["organization_id"],
        ["organizations.id"],
        name=op.f(f"fk_{table}_organization_id_organizations"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "usage_month_users",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        *_metrics(SLIM),
        _org_fk("usage_month_users"),
        sa.PrimaryKeyConstraint("organization_id", "month", "user_id", name=op.f("pk_usage_month_users")),
    )
    op.create_table(
        "usage_month_models",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("provider_id", sa.String(length=80), nullable=False),
        *_metrics(FULL),
        _org_fk("usage_month_models"),
        sa.PrimaryKeyConstraint("organization_id", "month", "model_id", name=op.f("pk_usage_month_models")),
    )
    op.create_table(
        "usage_month_dimensions",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("dimension", sa.String(length=20), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        *_metrics(SLIM),
        _org_fk("usage_month_dimensions"),
        sa.PrimaryKeyConstraint(
            "organization_id", "dimension", "month", "value", name=op.f("pk_usage_month_dimensions")
        ),
    )
    op.create_table(
        "usage_month_latency_buckets",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        _org_fk("usage_month_latency_buckets"),
        sa.PrimaryKeyConstraint(
            "organization_id", "month", "model_id", "bucket", name=op.f("pk_usage_month_latency_buckets")
        ),
    )
    # Existing usage: the months are the sums of the daily rollups already there (exact integer sums).
    month = (
        "date_trunc('month', day)::date"
        if op.get_bind().dialect.name == "postgresql"
        else "substr(day, 1, 8) || '01'"
    )
    slim_from_full = (
        "sum(requests), sum(input_tokens + cached_input_tokens + cache_write_tokens), "
        "sum(output_tokens + reasoning_tokens), sum(cost_nanousd)"
    )
    full = ", ".join(FULL)
    op.execute(
        f"INSERT INTO usage_month_users (organization_id, month, user_id, {', '.join(SLIM)}) "
        f"SELECT organization_id, {month}, user_id, {slim_from_full} FROM usage_day_users GROUP BY 1, 2, 3"
    )
    op.execute(
        f"INSERT INTO usage_month_models (organization_id, month, model_id, provider_id, {full}) "
        f"SELECT organization_id, {month}, model_id, min(provider_id), "
        f"{', '.join(f'sum({c})' for c in FULL)} FROM usage_day_models GROUP BY 1, 2, 3"
    )
    op.execute(
        f"INSERT INTO usage_month_dimensions (organization_id, dimension, month, value, {', '.join(SLIM)}) "
        f"SELECT organization_id, dimension, {month}, value, {', '.join(f'sum({c})' for c in SLIM)} "
        "FROM usage_dimension_days GROUP BY 1, 2, 3, 4"
    )
    op.execute(
        "INSERT INTO usage_month_latency_buckets (organization_id, month, model_id, bucket, requests) "
        f"SELECT organization_id, {month}, model_id, bucket, sum(requests) FROM usage_latency_buckets "
        "GROUP BY 1, 2, 3, 4"
    )


def downgrade() -> None:
    for table in (
        "usage_month_latency_buckets",
        "usage_month_dimensions",
        "usage_month_models",
        "usage_month_users",
    ):
        op.drop_table(table)
