"""Personal access tokens: creating, listing and revoking one's own, and accepting them."""

from __future__ import annotations

from collections.abc import Iterable

from application.audit import record
from application.email import security_notice
from domain.access_tokens import (
    MAX_LIFETIME_DAYS,
    MAX_LIVE_TOKENS,
    NAME,
    AccessToken,
    AccessTokenNotFound,
    AccessTokenRepository,
    TooManyTokens,
    checksum_ok,
)
from domain.audit import Action
from domain.email_tokens import token_hash
from domain.errors import InvalidToken, InvalidValue, Raises
from domain.mfa import Change
from domain.model import Principal, is_id
from domain.ports import Clock, UowFactory, UserRepository
from domain.scopes import Scope


class CreateAccessToken:
    """Make a personal access token for the caller: shown once, in this answer only.

    Only a superuser may ask for the admin scopes. A user has at most 50 live tokens,
    also when several are made at once. The user is mailed a notice."""

    raises: Raises = (InvalidValue, TooManyTokens, InvalidToken)

    def __init__(self, uow: UowFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(
        self, principal: Principal, name: str, scopes: Iterable[Scope], expires_in_days: int
    ) -> tuple[str, AccessToken]:
        name = NAME.validate(name)
        wanted = frozenset(scopes)
        if not wanted:
            raise InvalidValue("scopes", "must name at least one scope")
        if not 1 <= expires_in_days <= MAX_LIFETIME_DAYS:
            raise InvalidValue("expires_in_days", f"must be 1 to {MAX_LIFETIME_DAYS}")
        if any(scope.needs_superuser for scope in wanted) and not principal.user.is_superuser:
            raise InvalidValue("scopes", "only a superuser may ask for the admin scopes")
        async with self._uow() as uow:
            now = self._clock.now()
            token, stored = AccessToken.issue(principal.user, name, wanted, expires_in_days, now)
            if not await uow.repository(AccessTokenRepository).add(stored, MAX_LIVE_TOKENS):
                raise TooManyTokens()
            # The owner's row is held now: if their sessions were ended (or the account
            # deactivated) since the caller's token was checked, the token would be born
            # dead; refuse it instead.
            owner = await uow.repository(UserRepository).get(principal.user_id)
            if owner is None or not stored.admits(owner, now):
                raise InvalidToken()
            listed = ", ".join(sorted(wanted))
            await security_notice(
                uow,
                principal.user,
                Change.TOKEN_CREATED,
                Action.TOKEN_CREATED,
                now,
                mail={
                    "token_name": name,
                    "token_scopes": listed,
                    "token_expires": f"{stored.expires_at:%Y-%m-%d %H:%M} UTC",
                },
                token_id=stored.id,
                scopes=sorted(wanted),
                expires_at=stored.expires_at.isoformat(),
            )
            await uow.commit()
        return token, stored


class ListAccessTokens:
    """The caller's live personal access tokens, newest first (never the tokens)."""

    raises: Raises = ()

    def __init__(self, reader: UowFactory, clock: Clock) -> None:
        self._reader = reader
        self._clock = clock

    async def __call__(self, principal: Principal) -> list[AccessToken]:
        async with self._reader() as uow:
            return await uow.repository(AccessTokenRepository).list_live(
                principal.user_id, self._clock.now()
            )


class RevokeAccessToken:
    """Revoke one of the caller's personal access tokens: it stops working at once."""

    raises: Raises = (AccessTokenNotFound,)

    def __init__(self, uow: UowFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, principal: Principal, token_id: str) -> None:
        if not is_id(token_id):
            raise AccessTokenNotFound()
        async with self._uow() as uow:
            removed = await uow.repository(AccessTokenRepository).delete(
                token_id, principal.user_id
            )
            if removed is None:
                raise AccessTokenNotFound()
            await record(
                uow, Action.TOKEN_REVOKED, principal.user_id, self._clock.now(), token_id=token_id
            )
            await uow.commit()


async def authenticate_personal(
    reader: UowFactory, writer: UowFactory, clock: Clock, token: str
) -> Principal:
    """The principal a personal access token speaks for; ``InvalidToken`` for one that
    is malformed, unknown, expired or ended. Its use is written at most once a minute."""
    # The checksum first: a look-alike never reaches the database.
    if not checksum_ok(token):
        raise InvalidToken()
    async with reader() as uow:
        found = await uow.repository(AccessTokenRepository).get_with_owner(token_hash(token))
    now = clock.now()
    if found is None or not found[0].admits(found[1], now):
        raise InvalidToken()
    stored, owner = found
    used_at = stored.use_to_record(now)
    if used_at is not None:
        async with writer() as uow:
            await uow.repository(AccessTokenRepository).record_use(stored.id, used_at)
            await uow.commit()
    return Principal(user=owner, session_id=None, scopes=stored.scopes, token_id=stored.id)
