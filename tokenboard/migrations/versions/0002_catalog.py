"""catalog: providers, models and dated prices

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 00:56:49.917899
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tokenboard.kit.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalog_providers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("website", sa.String(length=400), nullable=True),
        sa.Column("headquarters_country", sa.String(length=2), nullable=True),
        sa.Column("regions", sa.JSON(), nullable=False),
        sa.Column("trains_on_prompts", sa.Boolean(), nullable=True),
        sa.Column("retains_prompts", sa.Boolean(), nullable=True),
        sa.Column("may_publish", sa.Boolean(), nullable=True),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("created_at", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_providers")),
    )
    op.create_table(
        "catalog_models",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("context_length", sa.Integer(), nullable=True),
        sa.Column("input_modalities", sa.JSON(), nullable=True),
        sa.Column("output_modalities", sa.JSON(), nullable=True),
        sa.Column("deprecated", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["catalog_providers.id"],
            name=op.f("fk_catalog_models_provider_id_catalog_providers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_models")),
    )
    with op.batch_alter_table("catalog_models", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_catalog_models_provider_id"), ["provider_id"], unique=False)

    op.create_table(
        "model_prices",
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("effective_from", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("input", tokenboard.kit.db.ExactDecimal(precision=38, scale=24), nullable=False),
        sa.Column("output", tokenboard.kit.db.ExactDecimal(precision=38, scale=24), nullable=False),
        sa.Column("cached_input_read", tokenboard.kit.db.ExactDecimal(precision=38, scale=24), nullable=True),
        sa.Column("cache_write_5m", tokenboard.kit.db.ExactDecimal(precision=38, scale=24), nullable=True),
        sa.Column("cache_write_1h", tokenboard.kit.db.ExactDecimal(precision=38, scale=24), nullable=True),
        sa.Column("reasoning", tokenboard.kit.db.ExactDecimal(precision=38, scale=24), nullable=True),
        sa.Column("per_request", tokenboard.kit.db.ExactDecimal(precision=38, scale=24), nullable=False),
        sa.Column("tiers", sa.JSON(), nullable=False),
        sa.Column("created_by_user_id", sa.Uuid(), nullable=True),
        sa.Column("note", sa.String(length=400), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["catalog_models.id"],
            name=op.f("fk_model_prices_model_id_catalog_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_prices")),
        sa.UniqueConstraint(
            "model_id",
            "source",
            "effective_from",
            name=op.f("uq_model_prices_model_id_source_effective_from"),
        ),
    )
    with op.batch_alter_table("model_prices", schema=None) as batch_op:
        batch_op.create_index("ix_model_prices_model_effective", ["model_id", "effective_from"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("model_prices", schema=None) as batch_op:
        batch_op.drop_index("ix_model_prices_model_effective")

    op.drop_table("model_prices")
    with op.batch_alter_table("catalog_models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_models_provider_id"))

    op.drop_table("catalog_models")
    op.drop_table("catalog_providers")
