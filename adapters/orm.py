"""Tables: the schema Alembic migrates and the repositories query.

Plain SQLAlchemy Core tables; the repositories translate rows to domain objects, so the
domain never depends on the ORM.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    func,
    text,
)
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.types import TypeDecorator

from domain.rules import canonical

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database.

    SQLite has no timezone type: values go in as naive UTC text, which also keeps
    comparisons in SQL correct, and come back marked as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# BIGINT on PostgreSQL; SQLite only auto-increments a plain INTEGER primary key.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def email_key(email: str) -> str:
    """What the unique index on emails holds: the email's canonical form (so look-alikes
    collide), digested to a fixed width, since NFKC can make a value 18 times longer
    than an index entry may be."""
    return hashlib.sha256(canonical(email).encode()).hexdigest()


def _email_key_of_row(context: DefaultExecutionContext) -> str:
    # Any INSERT through this table gets the key of the row's email; the repository
    # passes it explicitly (its PostgreSQL executor runs no Python-side default).
    row: dict[str, Any] = context.get_current_parameters()  # type: ignore[no-untyped-call]
    return email_key(row["email"])


users = Table(
    "users",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False),
    Column("username", String(32), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("full_name", String(100), nullable=True),
    Column("is_active", Boolean, nullable=False, server_default=text("true")),
    Column("is_superuser", Boolean, nullable=False, server_default=text("false")),
    Column("is_verified", Boolean, nullable=False, server_default=text("false")),
    Column("token_version", Integer, nullable=False, server_default=text("0")),
    Column("created_at", UTCDateTime, nullable=False),
    # email_key(email): written with the email on every insert and every change of it.
    Column("email_key", String(64), nullable=False, default=_email_key_of_row),
    # Never reuse the id of a deleted user on SQLite (PostgreSQL never does).
    sqlite_autoincrement=True,
)
# Uniqueness is case-insensitive (emails: by their canonical form, see email_key) and
# enforced by the database, so races end in a clean conflict rather than a duplicate.
Index("uq_users_email_key", users.c.email_key, unique=True)
Index("uq_users_username_lower", func.lower(users.c.username), unique=True)
# The public list: active users in id order.
Index(
    "ix_users_active_id",
    users.c.id,
    postgresql_where=users.c.is_active,
    sqlite_where=users.c.is_active,
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column(
        "user_id",
        BigId,
        ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("user_agent", String(255), nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("token_version", Integer, nullable=False, server_default=text("0")),
    # The login's time, or the last re-authentication's (API.md, "Recent authentication").
    # Every insert sets it; the default serves a code that does not know it yet (an
    # older replica during a rolling deploy).
    Column("authenticated_at", UTCDateTime, nullable=False, server_default=func.now()),
)
Index("ix_sessions_user_id_created_at", sessions.c.user_id, sessions.c.created_at)
Index("ix_sessions_expires_at", sessions.c.expires_at)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column(
        "session_id",
        String(32),
        ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # Denormalised from the session so that a refresh needs no join; deleting the
    # session (or its user) removes the tokens through the session's cascade.
    Column("user_id", BigId, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("rotated_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
)
Index("ix_refresh_tokens_session_id", refresh_tokens.c.session_id)
Index("ix_refresh_tokens_expires_at", refresh_tokens.c.expires_at)
