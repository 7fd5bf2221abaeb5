"""usage events without the foreign key to organizations

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 14:00:00.000000

The event table is the one written per request, and its foreign key to ``organizations`` made the database
look the organization up again for every inserted row (a referential-integrity check per row on
PostgreSQL, an index probe per row on SQLite), for an organization every writer has just resolved.
Organizations are never deleted, so the cascade it carried never ran. The key goes; the rollup tables,
written once per batch and key, keep theirs (decision 0003, "2026-12-03: no foreign key on the event
table").
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_FK = "fk_usage_events_organization_id_organizations"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(_FK, "usage_events", type_="foreignkey")
        return
    with op.batch_alter_table("usage_events", schema=None, recreate="always") as batch_op:
        batch_op.drop_constraint(_FK, type_="foreignkey")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_foreign_key(
            _FK, "usage_events", "organizations", ["organization_id"], ["id"], ondelete="CASCADE"
        )
        return
    with op.batch_alter_table("usage_events", schema=None, recreate="always") as batch_op:
        batch_op.create_foreign_key(_FK, "organizations", ["organization_id"], ["id"], ondelete="CASCADE")
