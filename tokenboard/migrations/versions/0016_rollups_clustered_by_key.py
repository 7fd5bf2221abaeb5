"""rollups clustered by their key on SQLite; the per-user hour and day x model rollups keyed by user first

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 20:00:00.000000

On SQLite every rollup table was a rowid table beside its key's index: a range of the key walked the index
and then looked each row up in the table, whose rows lie in the order they were first written (by time,
every user mixed). Each table is rebuilt ``WITHOUT ROWID``: its rows are stored in the key's order, a range
reads neighbouring pages, and an upsert writes one B-tree instead of two.

Two per-user tables are read for one user at a time (a member's own usage page) and now lead their key with
the user: ``usage_day_user_models`` (organization, user, day, model; the day's users found by a new index
on organization, day, model) and ``usage_hour_users`` (organization, user, hour; it had a second index on
exactly that, now dropped). On PostgreSQL only those two keys and indexes change (decision 0003,
"2026-12-03: rollups clustered by their key on SQLite").

Without statistics SQLite's planner takes a prefix of a ``WITHOUT ROWID`` table's key over any secondary
index: one user's days were read by walking the organization's every day. The migration writes fixed
statistics for the two tables with a secondary index (``sqlite_stat1``, as SQLite's documentation on fixed
results of ANALYZE describes), so a user's rows and a day's rows are each found by the index made for them
whatever the data. An ``ANALYZE`` later replaces them with measured ones.
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

TABLES = (
    "usage_days",
    "usage_day_users",
    "usage_day_models",
    "usage_day_user_models",
    "usage_hours",
    "usage_hour_users",
    "usage_dimension_days",
    "usage_dimension_user_days",
    "usage_latency_buckets",
    "usage_month_users",
    "usage_month_models",
    "usage_month_dimensions",
    "usage_month_latency_buckets",
    "usage_month_hour_cells",
)
DUM, HU = "usage_day_user_models", "usage_hour_users"
# (table, new key, old key, index dropped (name, columns), index created (name, columns))
REKEYED = (
    (
        DUM,
        ["organization_id", "user_id", "day", "model_id"],
        ["organization_id", "day", "user_id", "model_id"],
        ("ix_usage_day_user_models_org_user_day", ["organization_id", "user_id", "day"]),
        ("ix_usage_day_user_models_org_day_model", ["organization_id", "day", "model_id"]),
    ),
    (
        HU,
        ["organization_id", "user_id", "hour"],
        ["organization_id", "hour", "user_id"],
        ("ix_usage_hour_users_org_user_hour", ["organization_id", "user_id", "hour"]),
        None,
    ),
)


# (table, index: the table's own name for its key, stat: rows, then rows per value of each key prefix): the
# shape of an organization's year, not its figures; what matters is that a user's or a day's rows are few.
STATISTICS = (
    ("usage_day_user_models", "usage_day_user_models", "1000000 100000 1000 10 1"),
    ("usage_day_user_models", "ix_usage_day_user_models_org_day_model", "1000000 100000 3000 30 1"),
    ("usage_day_users", "usage_day_users", "100000 10000 100 1"),
    ("usage_day_users", "ix_usage_day_users_org_user_day", "100000 10000 300 1"),
)


def _statistics(forward: bool) -> None:
    tables = ", ".join(sorted({f"'{t}'" for t, _, _ in STATISTICS}))
    op.execute("ANALYZE usage_days")  # makes sqlite_stat1 if there is none (one small table measured)
    op.execute(f"DELETE FROM sqlite_stat1 WHERE tbl IN ({tables})")
    if forward:
        values = ", ".join(f"('{t}', '{i}', '{s}')" for t, i, s in STATISTICS)
        op.execute(f"INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES {values}")


def _postgresql(forward: bool) -> None:
    for table, new_key, old_key, dropped, created in REKEYED:
        key, gone, made = (new_key, dropped, created) if forward else (old_key, created, dropped)
        # One statement per table: the new key's index is built once, and the table is never without a key.
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}, "
            f"ADD CONSTRAINT pk_{table} PRIMARY KEY ({', '.join(key)})"
        )
        if gone is not None:
            op.drop_index(gone[0], table_name=table)
        if made is not None:
            op.create_index(made[0], table, made[1])


def _sqlite(forward: bool) -> None:
    rekeyed = {r[0]: r for r in REKEYED}
    for table in TABLES:
        # Rebuilt (copied into a new table, the old one dropped), as the key's order or rowid cannot change.
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_with_rowid": not forward}
        ) as batch_op:
            if table not in rekeyed:
                continue
            _, new_key, old_key, dropped, created = rekeyed[table]
            key, gone, made = (new_key, dropped, created) if forward else (old_key, created, dropped)
            batch_op.drop_constraint(f"pk_{table}", type_="primary")
            batch_op.create_primary_key(f"pk_{table}", key)
            if gone is not None:
                batch_op.drop_index(gone[0])
            if made is not None:
                batch_op.create_index(made[0], made[1])


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _postgresql(forward=True)
    else:
        _sqlite(forward=True)
        _statistics(forward=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _postgresql(forward=False)
    else:
        _statistics(forward=False)
        _sqlite(forward=False)
