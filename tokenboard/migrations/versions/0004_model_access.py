"""model access: an organization's provider and model switches, and its default model

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 01:10:07.947965
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tokenboard.kit.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "org_provider_access",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_org_provider_access_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["catalog_providers.id"],
            name=op.f("fk_org_provider_access_provider_id_catalog_providers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "provider_id", name=op.f("pk_org_provider_access")),
    )
    op.create_table(
        "org_model_access",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["catalog_models.id"],
            name=op.f("fk_org_model_access_model_id_catalog_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_org_model_access_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "model_id", name=op.f("pk_org_model_access")),
    )
    # Plain ALTER TABLE on both engines (no batch): rebuilding `organizations` on SQLite would drop and
    # re-create the table every tenant row cascades from.
    op.add_column("organizations", sa.Column("default_model_id", sa.String(length=200), nullable=True))


def downgrade() -> None:
    op.drop_column("organizations", "default_model_id")  # SQLite >= 3.35 drops a plain column in place
    op.drop_table("org_model_access")
    op.drop_table("org_provider_access")
