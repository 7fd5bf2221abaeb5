"""a maximum output per model: catalog_models.max_output_tokens

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 18:00:00.000000

``catalog_models.max_output_tokens``: the most tokens the model writes in one reply (OpenAI gpt-4o 16,384
where its context is 128,000). genai-prices does not carry it: the curated file gives it for the models it
covers and operators set their own. The gateway clamps a request's ``max_tokens`` to it (to the context
length when it is unknown, as before) and sizes the credit hold from the clamped value.

The column starts empty: the next ``tokenboard catalog sync`` fills the curated values (``tokenboard demo``
and the admin API's sync run it too); until then the gateway clamps to the context length as before. The
downgrade drops the column.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain nullable ADD COLUMN (no table rebuild on SQLite): unknown until the catalog is synced.
    op.add_column("catalog_models", sa.Column("max_output_tokens", sa.Integer(), nullable=True))


def downgrade() -> None:
    # A plain DROP COLUMN on both (SQLite has it since 3.35), not a batch copy of the whole table.
    op.drop_column("catalog_models", "max_output_tokens")
