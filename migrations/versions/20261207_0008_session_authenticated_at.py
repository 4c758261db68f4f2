"""Sessions remember when their user last proved who they are: sessions.authenticated_at.

A login sets it, ``POST /api/v1/auth/reauthenticate`` moves it, and the operations that
change how an account is protected need it recent (API.md, "Recent authentication").
Sessions already open count as authenticated when they were opened.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from adapters.orm import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    # A default, so that a replica still running the code before this revision (a
    # rolling deploy) can open sessions: they count as authenticated when opened.
    # SQLite adds a column only with a constant default; every row gets its own value
    # below, and every insert sets it afterwards.
    op.add_column(
        "sessions",
        sa.Column(
            "authenticated_at",
            UTCDateTime(),
            nullable=False,
            server_default="1970-01-01 00:00:00" if sqlite else sa.text("now()"),
        ),
    )
    op.execute("UPDATE sessions SET authenticated_at = created_at")


def downgrade() -> None:
    # SQLite (3.35+) and PostgreSQL both drop a column in place.
    op.drop_column("sessions", "authenticated_at")
