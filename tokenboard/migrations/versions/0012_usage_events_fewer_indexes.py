"""usage events without the (organization, created_at) index

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 18:50:00.000000

No read uses it: pages read the rollups, the conversation drill-down reads by (organization, conversation),
the rebuild by primary key, idempotency by (organization, request id). Every event paid for it on insert
(decision 0003, 2026-12-02).
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_events_org_created")


def downgrade() -> None:
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.create_index("ix_usage_events_org_created", ["organization_id", "created_at"], unique=False)
