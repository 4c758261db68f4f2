"""Organizations, their members and invitations; the audit trail's organization.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from adapters.orm import BigId, UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _key(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete=ondelete,
    )


def upgrade() -> None:
    op.create_table(
        "orgs",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("slug", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", BigId, nullable=True),
        _key("orgs", "created_by", "users", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orgs")),
    )
    op.create_index("uq_orgs_slug", "orgs", ["slug"], unique=True)
    op.create_index("ix_orgs_created_by", "orgs", ["created_by"])
    op.create_table(
        "org_members",
        sa.Column("org_id", BigId, nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("joined_at", UTCDateTime(), nullable=False),
        _key("org_members", "org_id", "orgs", "CASCADE"),
        _key("org_members", "user_id", "users", "CASCADE"),
        sa.PrimaryKeyConstraint("org_id", "user_id", name=op.f("pk_org_members")),
    )
    op.create_index("ix_org_members_user_id", "org_members", ["user_id"])
    op.create_table(
        "org_invitations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("org_id", BigId, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_key", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("invited_by", BigId, nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("accepted_at", UTCDateTime(), nullable=True),
        _key("org_invitations", "org_id", "orgs", "CASCADE"),
        _key("org_invitations", "invited_by", "users", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_org_invitations")),
    )
    op.create_index(
        "uq_org_invitations_org_id_email_key",
        "org_invitations",
        ["org_id", "email_key"],
        unique=True,
    )
    op.create_index("uq_org_invitations_token_hash", "org_invitations", ["token_hash"], unique=True)
    op.create_index("ix_org_invitations_expires_at", "org_invitations", ["expires_at"])
    op.add_column("audit_events", sa.Column("org_id", sa.BigInteger(), nullable=True))
    op.create_index("ix_audit_events_org_id_id", "audit_events", ["org_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_org_id_id", table_name="audit_events")
    op.drop_column("audit_events", "org_id")
    op.drop_table("org_invitations")
    op.drop_table("org_members")
    op.drop_table("orgs")
