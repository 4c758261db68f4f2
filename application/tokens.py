"""Issuing token pairs: shared by login and refresh."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.model import AccessClaims, RefreshClaims, RefreshToken, Session, TokenPair, User
from domain.ports import TokenCodec


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
