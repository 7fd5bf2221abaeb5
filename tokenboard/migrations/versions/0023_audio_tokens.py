"""audio tokens, priced apart

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 23:40:00.000000

``model_prices.input_audio`` and ``output_audio``: USD per audio token (OpenAI's gpt-audio, Gemini's audio
input), NULL meaning "priced like text input / output", which is how every stored price billed audio until
now. ``usage_events.input_audio_tokens`` and ``output_audio_tokens``: how many of a request's input and
output tokens were audio, so the message detail can show the cost line by line. Plain ADD COLUMNs (a
constant default, no table rewrite or rebuild); the downgrade drops them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tokenboard.kit.db

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

_PRICE = tokenboard.kit.db.ExactDecimal(precision=38, scale=24)


def upgrade() -> None:
    op.add_column("model_prices", sa.Column("input_audio", _PRICE, nullable=True))
    op.add_column("model_prices", sa.Column("output_audio", _PRICE, nullable=True))
    for name in ("input_audio_tokens", "output_audio_tokens"):
        op.add_column("usage_events", sa.Column(name, sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    for name in ("output_audio_tokens", "input_audio_tokens"):
        op.drop_column("usage_events", name)
    op.drop_column("model_prices", "output_audio")
    op.drop_column("model_prices", "input_audio")
