"""the event table's conversation index only over events that belong to a conversation

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 15:00:00.000000

``ix_usage_events_org_conversation`` serves one read, a conversation's drill-down (``conversation_id = ?``),
yet every event paid for an entry, including the many gateway requests that name no conversation (the
header is optional) and only ever add ``NULL`` keys. It is rebuilt as a partial index over
``conversation_id IS NOT NULL``, which both engines use for an equality on the column (decision 0003,
"2026-12-03: the conversation index without the events of no conversation").
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_NAME = "ix_usage_events_org_conversation"
_COLUMNS = ["organization_id", "conversation_id"]


def upgrade() -> None:
    where = sa.text("conversation_id IS NOT NULL")
    op.drop_index(_NAME, table_name="usage_events")
    op.create_index(_NAME, "usage_events", _COLUMNS, postgresql_where=where, sqlite_where=where)


def downgrade() -> None:
    op.drop_index(_NAME, table_name="usage_events")
    op.create_index(_NAME, "usage_events", _COLUMNS)
