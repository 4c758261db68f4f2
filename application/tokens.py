"""Issuing token pairs and opening sessions: shared by the logins and refresh."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.model import AccessClaims, RefreshClaims, RefreshToken, Session, TokenPair, User
from domain.ports import RefreshTokenRepository, SessionRepository, TokenCodec, UnitOfWork

USER_AGENT_MAX_LENGTH = 255


@dataclass(frozen=True)
class TokenPolicy:
    access_ttl: timedelta = timedelta(minutes=30)
    refresh_ttl: timedelta = timedelta(days=7)


def issue_pair(
    codec: TokenCodec, policy: TokenPolicy, user: User, session: Session, now: datetime
) -> tuple[TokenPair, RefreshToken]:
    """A fresh access token and a fresh refresh token (to be stored) for the session."""
    assert user.id is not None
    refresh = RefreshToken(
        session_id=session.id,
        user_id=user.id,
        created_at=now,
        expires_at=now + policy.refresh_ttl,
    )
    access = AccessClaims(
        user_id=user.id,
        session_id=session.id,
        token_version=user.token_version,
        issued_at=now,
        expires_at=now + policy.access_ttl,
    )
    pair = TokenPair(
        access_token=codec.encode_access(access),
        refresh_token=codec.encode_refresh(
            RefreshClaims(
                user_id=user.id,
                session_id=session.id,
                token_id=refresh.id,
                issued_at=now,
                expires_at=refresh.expires_at,
            )
        ),
        expires_in=int(policy.access_ttl.total_seconds()),
    )
    return pair, refresh


@dataclass(frozen=True)
class LoginResult:
    tokens: TokenPair
    user: User


async def open_session(
    uow: UnitOfWork,
    codec: TokenCodec,
    policy: TokenPolicy,
    user: User,
    now: datetime,
    user_agent: str | None,
) -> LoginResult | None:
    """A new session of ``user``, who has just proved who they are, and its first pair;
    None (nothing opened) when the user was deactivated, deleted or had every token
    revoked meanwhile (the session would not be admitted)."""
    assert user.id is not None
    session = Session(
        user_id=user.id,
        created_at=now,
        last_used_at=now,
        expires_at=now + policy.refresh_ttl,
        user_agent=user_agent[:USER_AGENT_MAX_LENGTH] if user_agent else None,
        token_version=user.token_version,
    )
    if not await uow.repository(SessionRepository).add(session):
        return None
    pair, refresh = issue_pair(codec, policy, user, session, now)
    await uow.repository(RefreshTokenRepository).add(refresh)
    return LoginResult(tokens=pair, user=user)
