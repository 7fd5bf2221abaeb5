"""usage events keyed by (organization, request id); the event id unindexed

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 08:00:00.000000

The event table had two unique B-trees, (organization, id) as its primary key and (organization, request
id) for idempotency, and every event paid for both on insert. Nothing reads by id but the pipeline's
"inserted now?" check, which reads the row by request id and compares ids just as well. The request id's
unique index becomes the primary key; the id column stays, unindexed (decision 0003, 2026-12-03).
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # One statement: the new key's index is built once, and the table is never without a key.
        op.execute(
            "ALTER TABLE usage_events DROP CONSTRAINT pk_usage_events, "
            "DROP CONSTRAINT uq_usage_events_organization_id_request_id, "
            "ADD CONSTRAINT pk_usage_events PRIMARY KEY (organization_id, request_id)"
        )
        return
    with op.batch_alter_table("usage_events", schema=None, recreate="always") as batch_op:
        batch_op.drop_constraint("uq_usage_events_organization_id_request_id", type_="unique")
        batch_op.drop_constraint("pk_usage_events", type_="primary")
        batch_op.create_primary_key("pk_usage_events", ["organization_id", "request_id"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE usage_events DROP CONSTRAINT pk_usage_events, "
            "ADD CONSTRAINT pk_usage_events PRIMARY KEY (organization_id, id), "
            "ADD CONSTRAINT uq_usage_events_organization_id_request_id UNIQUE (organization_id, request_id)"
        )
        return
    with op.batch_alter_table("usage_events", schema=None, recreate="always") as batch_op:
        batch_op.drop_constraint("pk_usage_events", type_="primary")
        batch_op.create_primary_key("pk_usage_events", ["organization_id", "id"])
        batch_op.create_unique_constraint(
            "uq_usage_events_organization_id_request_id", ["organization_id", "request_id"]
        )
