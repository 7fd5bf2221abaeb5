"""server-side web searches, priced and recorded

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 23:00:00.000000

``model_prices.per_web_search``: USD per server-side web search (Anthropic's web search tool, Perplexity's
searches), beside the per-request fee; 0 for every price already stored, which is what they were billed
until now. ``usage_events.web_searches``: how many searches a request made, so that the message detail can
show the cost line by line. Both are plain ADD COLUMNs with a constant default (no table rewrite on
PostgreSQL 11 and later, no rebuild on SQLite). The downgrade drops them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tokenboard.kit.db

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "model_prices",
        sa.Column(
            "per_web_search",
            tokenboard.kit.db.ExactDecimal(precision=38, scale=24),
            nullable=False,
            server_default="0",
        ),
    )
    op.add_column("usage_events", sa.Column("web_searches", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("usage_events", "web_searches")
    op.drop_column("model_prices", "per_web_search")
