"""Personal access tokens on the fakes: the format a scanner checks offline, what a token
may do, how one is accepted, and the rules of creating one."""

from __future__ import annotations

import copy
import string
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from application.access_tokens import CreateAccessToken, authenticate_personal
from application.auth import Authenticate
from domain.access_tokens import (
    PREFIX,
    TOKEN_LENGTH,
    AccessTokenRepository,
    TooManyTokens,
    checksum_ok,
    new_token,
    token_from,
)
from domain.errors import InvalidToken, InvalidValue
from domain.mfa import Change
from domain.model import Principal, User
from domain.outbox import Template
from domain.ports import UowFactory
from domain.scopes import Scope
from tests.fakes import (
    RELAXED,
    FakeAccessTokenRepository,
    FakeClock,
    FakeUnitOfWork,
    Store,
    make_user,
)
from tests.unit.conftest import principal_for, seed_user

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


# --- the format -------------------------------------------------------------------------


def test_a_token_has_the_prefix_a_fixed_length_and_a_checksum() -> None:
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert token.startswith(PREFIX)
        assert len(token) == TOKEN_LENGTH == 57
        assert set(token[len(PREFIX) :]) <= set(BASE62)
        assert checksum_ok(token)


@RELAXED  # its deadline would fail a loaded machine, not the code
@given(st.binary(min_size=32, max_size=32), st.data())
def test_any_one_character_changed_fails_the_checksum(secret: bytes, data: st.DataObject) -> None:
    token = token_from(secret)
    assert checksum_ok(token)
    at = data.draw(st.integers(len(PREFIX), TOKEN_LENGTH - 1))
    other = data.draw(st.sampled_from(BASE62).filter(lambda c: c != token[at]))
    assert not checksum_ok(token[:at] + other + token[at + 1 :])


@pytest.mark.parametrize(
    "value",
    ["", PREFIX, "ghp_" + "0" * 49, PREFIX.upper() + "0" * 49, "eyJhbGciOi.x.y", PREFIX + "!" * 49],
)
def test_what_is_not_a_token_fails_the_checksum(value: str) -> None:
    assert not checksum_ok(value)


def test_a_leaked_token_is_checked_offline_as_a_scanner_would() -> None:
    """Without this project's code: CRC32 of the 43 characters after the prefix, in
    base62 over six characters, is the rest (the recipe in README.md)."""
    token = new_token()
    body, checksum = token[len(PREFIX) : -6], token[-6:]
    value, digits = zlib.crc32(body.encode()), ""
    for _ in range(6):
        value, digit = divmod(value, 62)
        digits = BASE62[digit] + digits
    assert digits == checksum


# --- what a token may do ----------------------------------------------------------------


def token_principal(user: User, *scopes: Scope) -> Principal:
    return Principal(user=user, session_id=None, scopes=frozenset(scopes), token_id="t")


@pytest.mark.parametrize("scope", [*Scope, None])
def test_a_session_may_do_anything_its_user_may(ada: User, scope: Scope | None) -> None:
    assert Principal(user=ada, session_id="s").allows(scope)


@pytest.mark.parametrize("held", list(Scope))
@pytest.mark.parametrize("needed", [*Scope, None])
def test_a_token_may_do_what_its_scopes_name_and_nothing_else(
    held: Scope, needed: Scope | None
) -> None:
    root = make_user(id=1, is_superuser=True)
    assert token_principal(root, held).allows(needed) == (held == needed)


@pytest.mark.parametrize("scope", [Scope.ADMIN_READ, Scope.ADMIN_WRITE])
def test_an_admin_scope_works_only_while_its_owner_is_a_superuser(ada: User, scope: Scope) -> None:
    assert not ada.is_superuser
    assert not token_principal(ada, scope).allows(scope)
    assert token_principal(ada, Scope.PROFILE_READ).allows(Scope.PROFILE_READ)


# --- accepting a token -------------------------------------------------------------------


class CountingTokens(FakeAccessTokenRepository):
    uses: int = 0

    async def record_use(self, token_id: str, at: datetime) -> None:
        CountingTokens.uses += 1
        await super().record_use(token_id, at)


def units(store: Store) -> UowFactory:
    return lambda: FakeUnitOfWork(store, repositories={AccessTokenRepository: CountingTokens})


async def make(store: Store, clock: FakeClock, user: User, *scopes: Scope, days: int = 30) -> str:
    create = CreateAccessToken(units(store), clock)
    token, _ = await create(principal_for(store, user), "ci", scopes or [Scope.PROFILE_READ], days)
    return token


async def test_a_token_speaks_for_its_owner_with_its_scopes(
    store: Store, clock: FakeClock, ada: User
) -> None:
    token = await make(store, clock, ada, Scope.PROFILE_READ, Scope.PROFILE_WRITE)
    principal = await authenticate_personal(units(store), units(store), clock, token)
    assert principal.user_id == ada.id
    assert principal.session_id is None
    assert principal.scopes == frozenset({Scope.PROFILE_READ, Scope.PROFILE_WRITE})
    assert not principal.is_session


async def test_a_use_is_written_once_a_minute_at_most(store: Store, ada: User) -> None:
    clock = FakeClock(datetime(2026, 12, 8, 9, 30, 0, tzinfo=UTC))
    token = await make(store, clock, ada)
    CountingTokens.uses = 0
    for _ in range(5):
        await authenticate_personal(units(store), units(store), clock, token)
        clock.advance(seconds=5)
    assert CountingTokens.uses == 1
    clock.advance(minutes=1)
    await authenticate_personal(units(store), units(store), clock, token)
    assert CountingTokens.uses == 2


async def test_the_access_token_path_still_takes_jwts(
    authenticate: Authenticate, store: Store, clock: FakeClock, ada: User
) -> None:
    with pytest.raises(InvalidToken):
        await authenticate(PREFIX + "0" * 49)  # a look-alike: refused before any lookup
    with pytest.raises(InvalidToken):
        await authenticate("not-a-jwt")


@pytest.mark.parametrize("end", ["version", "inactive", "expired", "deleted"])
async def test_a_token_ends_with_its_owners_sessions_or_its_lifetime(
    store: Store, clock: FakeClock, ada: User, end: str
) -> None:
    token = await make(store, clock, ada, days=1)
    assert ada.id is not None
    if end == "version":
        store.users[ada.id].token_version += 1
    elif end == "inactive":
        store.users[ada.id].is_active = False
    elif end == "expired":
        clock.advance(days=1)
    else:
        del store.users[ada.id]
    with pytest.raises(InvalidToken):
        await authenticate_personal(units(store), units(store), clock, token)


# --- creating one ------------------------------------------------------------------------


async def test_a_token_is_stored_as_its_hash_and_its_creation_mailed(
    store: Store, clock: FakeClock, ada: User
) -> None:
    token = await make(store, clock, ada)
    (stored,) = store.table("access_tokens").values()
    assert token not in repr(vars(stored))
    (message,) = store.outbox.values()
    assert message.template == Template.SECURITY_NOTICE
    assert message.context["change"] == Change.TOKEN_CREATED
    assert token not in repr(message.context)
    assert [e.action.value for e in store.audit] == ["token.created"]


async def test_admin_scopes_are_for_superusers(store: Store, clock: FakeClock, ada: User) -> None:
    with pytest.raises(InvalidValue) as refused:
        await make(store, clock, ada, Scope.ADMIN_READ)
    assert refused.value.field == "scopes"
    root = seed_user(store, username="root", email="root@example.com", is_superuser=True)
    assert await make(store, clock, root, Scope.ADMIN_READ, Scope.ADMIN_WRITE)


async def test_the_fifty_first_live_token_is_refused(
    store: Store, clock: FakeClock, ada: User
) -> None:
    for _ in range(49):
        await make(store, clock, ada, days=2)
    short = await make(store, clock, ada, days=1)
    with pytest.raises(TooManyTokens):
        await make(store, clock, ada)
    clock.advance(days=1)  # one of them expires: room for one
    assert await make(store, clock, ada) != short


async def test_a_token_made_for_a_principal_whose_sessions_ended_is_refused(
    store: Store, clock: FakeClock, ada: User
) -> None:
    principal = principal_for(store, ada)
    assert ada.id is not None
    store.users[ada.id].token_version += 1  # logout-all, between the check and the write
    with pytest.raises(InvalidToken):
        await CreateAccessToken(units(store), clock)(principal, "ci", [Scope.PROFILE_READ], 30)
    assert store.table("access_tokens") == {}


async def test_names_and_lifetimes_are_checked(store: Store, clock: FakeClock, ada: User) -> None:
    create = CreateAccessToken(units(store), clock)
    principal = principal_for(store, ada)
    for name, scopes, days, field in (
        ("  ", [Scope.PROFILE_READ], 1, "name"),
        ("x" * 65, [Scope.PROFILE_READ], 1, "name"),
        ("ci", [], 1, "scopes"),
        ("ci", [Scope.PROFILE_READ], 0, "expires_in_days"),
        ("ci", [Scope.PROFILE_READ], 366, "expires_in_days"),
    ):
        with pytest.raises(InvalidValue) as refused:
            await create(principal, name, scopes, days)
        assert refused.value.field == field
    _, stored = await create(principal, "  deploy  ", [Scope.PROFILE_READ], 365)
    assert stored.name == "deploy"
    assert stored.expires_at - stored.created_at == timedelta(days=365)
    assert copy.copy(stored).token_version == ada.token_version
