"""The count of active users follows inserts and deletes once per statement.

Migration 0005 counted row by row. A statement that inserts many users (a COPY, a
bulk import) then updated the same 16 count rows once per user, inside one
transaction, where no older version can be pruned: each update walked a longer chain
of versions, and seeding 900,000 users took minutes instead of seconds. On PostgreSQL
the insert and delete triggers now run once per statement, over the statement's rows
(transition tables), adding one delta per slot in slot order (so concurrent statements
lock the count rows in the same order). A (de)activation stays a row trigger:
PostgreSQL allows no transition tables on ``UPDATE OF`` a column, and an update of
another column must not run the trigger at all. SQLite has only row triggers, and no
such chains: it keeps those of 0005.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLOTS = 16


def _add_per_slot(rows: str, sign: str) -> str:
    return (
        f"INSERT INTO user_counts (slot, value)"  # noqa: S608 - constants only, no input
        f" SELECT id % {SLOTS}, {sign}count(*) FROM {rows} WHERE is_active"
        f" GROUP BY id % {SLOTS} ORDER BY id % {SLOTS}"
        " ON CONFLICT (slot) DO UPDATE SET value = user_counts.value + excluded.value"
    )


PER_STATEMENT = [
    "DROP TRIGGER users_active_inserted ON users",
    "DROP TRIGGER users_active_deleted ON users",
    f"""
    CREATE FUNCTION users_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        {_add_per_slot("inserted_rows", "")};
        RETURN NULL;
    END $$
    """,
    f"""
    CREATE FUNCTION users_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        {_add_per_slot("deleted_rows", "-")};
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER users_active_inserted AFTER INSERT ON users"
    " REFERENCING NEW TABLE AS inserted_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION users_count_inserted()",
    "CREATE TRIGGER users_active_deleted AFTER DELETE ON users"
    " REFERENCING OLD TABLE AS deleted_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION users_count_deleted()",
]
PER_ROW = [
    "DROP TRIGGER users_active_inserted ON users",
    "DROP TRIGGER users_active_deleted ON users",
    "DROP FUNCTION users_count_inserted()",
    "DROP FUNCTION users_count_deleted()",
    "CREATE TRIGGER users_active_inserted AFTER INSERT ON users FOR EACH ROW"
    " WHEN (NEW.is_active) EXECUTE FUNCTION users_count_active()",
    "CREATE TRIGGER users_active_deleted AFTER DELETE ON users FOR EACH ROW"
    " WHEN (OLD.is_active) EXECUTE FUNCTION users_count_active()",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in PER_STATEMENT:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in PER_ROW:
            op.execute(statement)
