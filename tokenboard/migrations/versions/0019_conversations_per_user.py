"""a conversation is one user's: the conversation rollup keyed (organization, conversation id, user)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 17:00:00.000000

``usage_conversations`` was keyed (organization, conversation id): a conversation "belonged" to the user
of its earliest event and summed every user's events with that id, so a member who sent the same
conversation id as another saw the other's requests and cost as their own (and the other got a 404 for
theirs). It is now keyed (organization, conversation id, user): each user's part of a shared id is its own
row with only that user's events, the events without a user (the nil UUID) theirs. The two ``last_at``
indexes the lists read stay as they were.

The table is emptied, rekeyed and recomputed here from ``usage_events`` with the pipeline's rules (the
events that name a conversation, summed per key, first and last request): one pass over the events that
name a conversation. The downgrade recomputes the old table the same way, the user of each id's earliest
event (ties broken by the event's id, which is time-ordered) holding every user's events again (decision
0003, "2026-12-07: a conversation is one user's").
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tokenboard.kit.db

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

TABLE = "usage_conversations"
KEY = {
    True: ["organization_id", "conversation_id", "user_id"],
    False: ["organization_id", "conversation_id"],
}
INDEXES = {
    "ix_usage_conversations_org_last": ["organization_id", "last_at"],
    "ix_usage_conversations_org_user_last": ["organization_id", "user_id", "last_at"],
}
COLUMNS = (
    "organization_id, conversation_id, user_id, first_at, last_at, "
    "requests, total_input_tokens, total_output_tokens, cost_nanousd"
)
# The conversation rollup's sums, as both pipelines make them (rollups.py).
SUMS = (
    "min(created_at), max(created_at), count(*), "
    "sum(input_tokens + cached_input_tokens + cache_write_5m_tokens + cache_write_1h_tokens), "
    "sum(output_tokens + reasoning_tokens), sum(cost_nanousd)"
)


def _fill(forward: bool, no_user: str) -> None:
    """The table's rows from the events (the table is empty and has the key of ``forward``)."""
    events = "FROM usage_events e WHERE e.conversation_id <> ''"
    if forward:
        select = (
            f"SELECT organization_id, conversation_id, coalesce(user_id, {no_user}), {SUMS} {events} "
            "GROUP BY 1, 2, 3"
        )
    else:
        earliest = (  # the user of the id's earliest event, as the old pipeline kept it
            f"(SELECT coalesce(f.user_id, {no_user}) FROM usage_events f "
            "WHERE f.organization_id = e.organization_id AND f.conversation_id = e.conversation_id "
            "ORDER BY f.created_at, f.id LIMIT 1)"
        )
        select = f"SELECT organization_id, conversation_id, {earliest}, {SUMS} {events} GROUP BY 1, 2"
    op.execute(f"INSERT INTO {TABLE} ({COLUMNS}) {select}")


def _postgresql(forward: bool) -> None:
    op.execute(f"TRUNCATE {TABLE}")
    # One statement: the new key's index is built once (over no rows), and the table is never without one.
    op.execute(
        f"ALTER TABLE {TABLE} DROP CONSTRAINT pk_{TABLE}, "
        f"ADD CONSTRAINT pk_{TABLE} PRIMARY KEY ({', '.join(KEY[forward])})"
    )
    _fill(forward, "'00000000-0000-0000-0000-000000000000'::uuid")


def _sqlite(forward: bool) -> None:
    # A key cannot change in place on SQLite: a new table (as migration 0007 made it, with the other key)
    # takes the old one's place, then the recomputed rows, then its indexes.
    op.drop_table(TABLE)
    op.create_table(
        TABLE,
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("first_at", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_at", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("total_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("total_output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_nanousd", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f(f"fk_{TABLE}_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(*KEY[forward], name=op.f(f"pk_{TABLE}")),
    )
    _fill(forward, f"'{'0' * 32}'")  # UUIDs are stored as 32 hex digits
    for name, columns in INDEXES.items():
        op.create_index(name, TABLE, columns)


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
