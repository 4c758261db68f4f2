"""A slow step (hashing) between a read and a write never undoes a change that another
request committed meanwhile: each use case writes only what it changed, under the
condition that what it read is still current.

The interleavings are deterministic: the hasher stops at its slow step until the test
has committed the concurrent change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import pytest

from adapters.jwt_codec import JwtCodec
from application.admin import SetActive, SetPassword
from application.auth import Authenticate, LogIn, LogOutEverywhere
from application.users import ProfileChanges, UpdateProfile
from domain.errors import InvalidCredentials, InvalidToken
from domain.model import Principal
from tests.fakes import (
    POLICY,
    FakeClock,
    FakeFailedLoginCounter,
    FakeHasher,
    FakeUnitOfWork,
    Store,
    session_of,
)
from tests.unit.conftest import PASSWORD, principal_for, seed_user

T = TypeVar("T")


class GatedHasher(FakeHasher):
    """Stops inside ``hash`` until ``release()``; ``entered`` tells that it got there."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self._gate = asyncio.Event()

    def release(self) -> None:
        self._gate.set()

    async def hash(self, password: str) -> str:
        self.entered.set()
        await self._gate.wait()
        return await super().hash(password)


def units(store: Store) -> FakeUnitOfWork:
    """A new unit of work on ``store`` each time, as the container gives them."""
    return FakeUnitOfWork(store)


async def while_hashing(slow: Awaitable[T], hasher: GatedHasher, meanwhile: Awaitable[object]) -> T:
    """Run ``slow`` until it reaches the hash, run ``meanwhile`` to the end, then let
    ``slow`` go on; ``slow``'s outcome."""
    task = asyncio.ensure_future(slow)
    await asyncio.wait_for(hasher.entered.wait(), 10)
    await meanwhile
    hasher.release()
    return await asyncio.wait_for(task, 10)


@pytest.fixture
def gated() -> GatedHasher:
    return GatedHasher()


def log_in(store: Store, hasher: FakeHasher, codec: JwtCodec, clock: FakeClock) -> LogIn:
    return LogIn(lambda: units(store), hasher, codec, clock, FakeFailedLoginCounter(), POLICY)


async def test_a_login_that_rehashes_never_revives_an_account_deactivated_meanwhile(
    store: Store, gated: GatedHasher, codec: JwtCodec, clock: FakeClock
) -> None:
    ada = seed_user(store, password_hash=f"old${PASSWORD}")  # outdated: login rehashes
    deactivate = SetActive(lambda: units(store), clock)

    with pytest.raises(InvalidCredentials):
        await while_hashing(
            log_in(store, gated, codec, clock)("ada", PASSWORD),
            gated,
            deactivate("ada", active=False),
        )

    stored = store.users[ada.id]  # type: ignore[index]
    assert (stored.is_active, stored.token_version) == (False, 1)
    assert store.sessions == {}


async def test_a_login_that_rehashes_keeps_a_password_set_meanwhile(
    store: Store, gated: GatedHasher, codec: JwtCodec, clock: FakeClock
) -> None:
    ada = seed_user(store, password_hash=f"old${PASSWORD}")
    set_password = SetPassword(lambda: units(store), FakeHasher(), clock)

    with pytest.raises(InvalidCredentials):
        await while_hashing(
            log_in(store, gated, codec, clock)("ada", PASSWORD),
            gated,
            set_password("ada", "an operator's new password"),
        )

    stored = store.users[ada.id]  # type: ignore[index]
    assert stored.password_hash == "new$an operator's new password"
    assert stored.token_version == 1
    assert store.sessions == {}


async def test_a_login_that_rehashes_opens_no_session_after_a_logout_everywhere(
    store: Store, gated: GatedHasher, codec: JwtCodec, clock: FakeClock
) -> None:
    ada = seed_user(store, password_hash=f"old${PASSWORD}")
    principal = principal_for(store, ada)

    with pytest.raises(InvalidCredentials):
        await while_hashing(
            log_in(store, gated, codec, clock)("ada", PASSWORD),
            gated,
            LogOutEverywhere(lambda: units(store), clock)(principal),
        )

    assert store.users[ada.id].token_version == 1  # type: ignore[index]
    assert store.sessions == {}


async def test_a_login_that_rehashes_without_interference_stores_the_new_hash(
    store: Store, gated: GatedHasher, codec: JwtCodec, clock: FakeClock
) -> None:
    ada = seed_user(store, password_hash=f"old${PASSWORD}")

    result = await while_hashing(
        log_in(store, gated, codec, clock)("ada", PASSWORD), gated, asyncio.sleep(0)
    )

    assert store.users[ada.id].password_hash == f"new${PASSWORD}"  # type: ignore[index]
    assert result.user.password_hash == f"new${PASSWORD}"
    assert len(store.sessions) == 1


def update_profile(store: Store, hasher: FakeHasher, clock: FakeClock) -> UpdateProfile:
    return UpdateProfile(lambda: units(store), hasher, clock, FakeFailedLoginCounter())


async def test_a_password_change_never_revives_an_account_deactivated_meanwhile(
    store: Store, gated: GatedHasher, clock: FakeClock
) -> None:
    ada = seed_user(store, password_hash=f"new${PASSWORD}")
    changes = ProfileChanges(password="a brand new secret", current_password=PASSWORD)

    with pytest.raises(InvalidToken):
        await while_hashing(
            update_profile(store, gated, clock)(principal_for(store, ada), changes),
            gated,
            SetActive(lambda: units(store), clock)("ada", active=False),
        )

    stored = store.users[ada.id]  # type: ignore[index]
    assert (stored.is_active, stored.token_version) == (False, 1)
    assert stored.password_hash == f"new${PASSWORD}"


async def test_a_profile_change_never_undoes_a_password_set_meanwhile(
    store: Store, gated: GatedHasher, clock: FakeClock
) -> None:
    ada = seed_user(store, password_hash=f"new${PASSWORD}")
    changes = ProfileChanges(
        username="ada2", password="a brand new secret", current_password=PASSWORD
    )

    with pytest.raises(InvalidToken):
        await while_hashing(
            update_profile(store, gated, clock)(principal_for(store, ada), changes),
            gated,
            SetPassword(lambda: units(store), FakeHasher(), clock)("ada", "the operator's one"),
        )

    stored = store.users[ada.id]  # type: ignore[index]
    assert (stored.username, stored.password_hash) == ("ada", "new$the operator's one")


async def test_an_access_token_of_an_expired_session_is_refused(
    store: Store, codec: JwtCodec, clock: FakeClock
) -> None:
    seed_user(store, password_hash=f"new${PASSWORD}")
    result = await log_in(store, FakeHasher(), codec, clock)("ada", PASSWORD)
    authenticate = Authenticate(lambda: units(store), lambda: units(store), codec, clock)
    principal: Principal = await authenticate(result.tokens.access_token)

    # The access token itself is still valid; the session it belongs to is over.
    store.sessions[session_of(principal)].expires_at = clock.now()

    with pytest.raises(InvalidToken):
        await authenticate(result.tokens.access_token)
