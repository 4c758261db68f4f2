"""Which adapter implements each repository port: the one list of them.

A unit of work serves ``uow.repository(Port)`` from this table, and importing this
module defines every table of ``adapters.orm.metadata``, which migrations compare with
the database. ``app scaffold resource`` adds its line here.
"""

from __future__ import annotations

from collections.abc import Mapping

from adapters.access_token_repository import SqlAccessTokenRepository
from adapters.audit_repository import SqlAuditLog
from adapters.email_token_repository import SqlEmailTokenRepository
from adapters.mfa_repository import SqlMfaTokenRepository, SqlSecondFactorRepository
from adapters.org_repository import SqlInvitationRepository, SqlOrgRepository
from adapters.outbox_repository import SqlOutboxRepository
from adapters.passkey_repository import SqlChallengeRepository, SqlPasskeyRepository
from adapters.refresh_token_repository import SqlRefreshTokenRepository
from adapters.session_repository import SqlSessionRepository
from adapters.signing_key_repository import SqlSigningKeyRepository
from adapters.sql_repository import SqlRepository
from adapters.user_repository import SqlUserRepository
from domain.access_tokens import AccessTokenRepository
from domain.audit import AuditLog
from domain.email_tokens import EmailTokenRepository
from domain.mfa import MfaTokenRepository, SecondFactorRepository
from domain.orgs import InvitationRepository, OrgRepository
from domain.outbox import OutboxRepository
from domain.passkeys import ChallengeRepository, PasskeyRepository
from domain.ports import RefreshTokenRepository, SessionRepository, UserRepository
from domain.signing_keys import SigningKeyRepository

REPOSITORIES: Mapping[type, type[SqlRepository]] = {
    UserRepository: SqlUserRepository,
    SessionRepository: SqlSessionRepository,
    RefreshTokenRepository: SqlRefreshTokenRepository,
    EmailTokenRepository: SqlEmailTokenRepository,
    OutboxRepository: SqlOutboxRepository,
    AuditLog: SqlAuditLog,
    SigningKeyRepository: SqlSigningKeyRepository,
    SecondFactorRepository: SqlSecondFactorRepository,
    MfaTokenRepository: SqlMfaTokenRepository,
    PasskeyRepository: SqlPasskeyRepository,
    ChallengeRepository: SqlChallengeRepository,
    AccessTokenRepository: SqlAccessTokenRepository,
    OrgRepository: SqlOrgRepository,
    InvitationRepository: SqlInvitationRepository,
    # Resources of your own
}


def adapter_for(port: type) -> type[SqlRepository]:
    """The class implementing the repository ``port``; ``LookupError`` naming this
    module if none does."""
    try:
        return REPOSITORIES[port]
    except KeyError:
        raise LookupError(
            f"no adapter implements {port.__module__}.{port.__qualname__}:"
            " add it to REPOSITORIES in adapters/repositories.py"
        ) from None
