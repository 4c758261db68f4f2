"""The number of active users, kept by the database: user_counts and its triggers.

The public list shows an exact total on every page; counting every active user for
each page grows with the table. Triggers keep the number instead, in the transaction
of every insert, delete and (de)activation, whoever writes (the app, the CLI, a COPY).
It is spread over 16 rows so that concurrent registrations do not all wait on one.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLOTS = 16
FLIP = "CASE WHEN NEW.is_active THEN 1 ELSE -1 END"
_ADD = (
    "INSERT INTO user_counts (slot, value) VALUES ({slot}, {delta})"
    " ON CONFLICT (slot) DO UPDATE SET value = user_counts.value + excluded.value"
)
POSTGRESQL = [
    f"""
    CREATE FUNCTION users_count_active() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            {_ADD.format(slot=f"NEW.id % {SLOTS}", delta="1")};
        ELSIF TG_OP = 'DELETE' THEN
            {_ADD.format(slot=f"OLD.id % {SLOTS}", delta="-1")};
        ELSE
            {_ADD.format(slot=f"NEW.id % {SLOTS}", delta=FLIP)};
        END IF;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER users_active_inserted AFTER INSERT ON users FOR EACH ROW"
    " WHEN (NEW.is_active) EXECUTE FUNCTION users_count_active()",
    "CREATE TRIGGER users_active_deleted AFTER DELETE ON users FOR EACH ROW"
    " WHEN (OLD.is_active) EXECUTE FUNCTION users_count_active()",
    "CREATE TRIGGER users_active_changed AFTER UPDATE OF is_active ON users FOR EACH ROW"
    " WHEN (OLD.is_active IS DISTINCT FROM NEW.is_active) EXECUTE FUNCTION users_count_active()",
]
SQLITE = [
    "CREATE TRIGGER users_active_inserted AFTER INSERT ON users WHEN NEW.is_active BEGIN "
    + _ADD.format(slot=f"NEW.id % {SLOTS}", delta="1")
    + "; END",
    "CREATE TRIGGER users_active_deleted AFTER DELETE ON users WHEN OLD.is_active BEGIN "
    + _ADD.format(slot=f"OLD.id % {SLOTS}", delta="-1")
    + "; END",
    "CREATE TRIGGER users_active_changed AFTER UPDATE OF is_active ON users"
    " WHEN OLD.is_active <> NEW.is_active BEGIN "
    + _ADD.format(slot=f"NEW.id % {SLOTS}", delta=FLIP)
    + "; END",
]
TRIGGERS = ("users_active_inserted", "users_active_deleted", "users_active_changed")


def upgrade() -> None:
    op.create_table(
        "user_counts",
        sa.Column("slot", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("slot", name=op.f("pk_user_counts")),
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    # Counted once, before the triggers take over (a migration runs alone).
    op.execute(
        "INSERT INTO user_counts (slot, value) SELECT 0, count(*) FROM users WHERE is_active"
    )
    for statement in SQLITE if sqlite else POSTGRESQL:
        op.execute(statement)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for trigger in TRIGGERS:
        op.execute(f"DROP TRIGGER {trigger}" if sqlite else f"DROP TRIGGER {trigger} ON users")
    if not sqlite:
        op.execute("DROP FUNCTION users_count_active()")
    op.drop_table("user_counts")
