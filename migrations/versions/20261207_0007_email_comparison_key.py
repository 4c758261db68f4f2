"""Emails are unique by their canonical form: users.email_key, instead of lower(email).

Uniqueness compared lower-cased emails, so a full-width or otherwise
compatibility-equivalent look-alike of a taken address made a second account. The key
(``adapters.orm.email_key``: a digest of the NFKC-normalised, case-folded address) is
beyond SQL, so it is computed here in Python, in batches, for the users already there,
and by the repository for every insert and change of an email afterwards.

Look-alikes registered before stop the upgrade before anything is changed, naming two
of the users: one of them gets another address first.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from alembic.util import CommandError
from sqlalchemy.engine import Connection

from adapters.orm import email_key

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000

users = sa.table("users", sa.column("id", sa.BigInteger()), sa.column("email", sa.String()))
# The keys are computed into a temporary table first, so that a conflict is found
# before the users table is touched (SQLite runs ALTER TABLE outside the transaction).
keys = sa.Table(
    "email_keys_0007",
    sa.MetaData(),
    sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("email_key", sa.String(64), nullable=False),
    prefixes=["TEMPORARY"],
)


def _compute_keys(conn: Connection) -> None:
    """Fill the temporary table, one batch of users at a time in id order."""
    last: int | None = None
    while True:
        query = sa.select(users.c.id, users.c.email).order_by(users.c.id).limit(BATCH)
        if last is not None:
            query = query.where(users.c.id > last)
        rows = conn.execute(query).all()
        if not rows:
            return
        conn.execute(sa.insert(keys), [{"id": i, "email_key": email_key(e)} for i, e in rows])
        last = rows[-1].id


def _refuse_look_alikes(conn: Connection) -> None:
    clash = conn.execute(
        sa.select(sa.func.min(keys.c.id), sa.func.max(keys.c.id))
        .group_by(keys.c.email_key)
        .having(sa.func.count() > 1)
        .limit(1)
    ).first()
    if clash is not None:
        raise CommandError(
            f"users {clash[0]} and {clash[1]} have look-alike emails, which are now one"
            " and the same: give one of them another address, then upgrade again"
        )


def upgrade() -> None:
    if context.is_offline_mode():
        raise CommandError("migration 0007 computes the keys in Python: run it online")
    conn = op.get_bind()
    sqlite = conn.dialect.name == "sqlite"
    if not sqlite:
        # A user written meanwhile would miss its key; reads go on until the ALTER.
        op.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
    keys.create(conn)
    _compute_keys(conn)
    _refuse_look_alikes(conn)

    # SQLite adds a NOT NULL column only with a default: '' is replaced below, for
    # every row, and never written afterwards (every insert sets the key).
    op.add_column(
        "users",
        sa.Column(
            "email_key",
            sa.String(64),
            nullable=not sqlite,
            server_default="" if sqlite else None,
        ),
    )
    op.execute(
        sa.text(
            "UPDATE users SET email_key ="
            " (SELECT k.email_key FROM email_keys_0007 AS k WHERE k.id = users.id)"
        )
    )
    keys.drop(conn)
    if not sqlite:
        op.alter_column("users", "email_key", nullable=False)
    op.drop_index("uq_users_email_lower", table_name="users")
    op.create_index("uq_users_email_key", "users", ["email_key"], unique=True)


def downgrade() -> None:
    op.create_index("uq_users_email_lower", "users", [sa.text("lower(email)")], unique=True)
    op.drop_index("uq_users_email_key", table_name="users")
    # SQLite (3.35+) and PostgreSQL both drop a column in place.
    op.drop_column("users", "email_key")
