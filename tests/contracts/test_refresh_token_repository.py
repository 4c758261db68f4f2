"""The RefreshTokenRepository contract (RefreshTokenRepository, domain/ports.py): what the
fake and the SQL adapter on SQLite and PostgreSQL alike must do. Concurrent rotations of
one token, which need several connections, are tested in tests/integration/test_races.py."""

from __future__ import annotations

from datetime import timedelta

from domain.ports import RefreshTokenRepository, SessionRepository, UserRepository
from tests.contracts.builders import (
    DAY,
    NOW,
    UowFactory,
    add_session,
    add_token,
    add_user,
    make_token,
    stored_token,
)


async def test_add_then_get_returns_every_field(new_uow: UowFactory) -> None:
    session = await add_session(new_uow, await add_user(new_uow, "ada"))
    token = make_token(session, rotated_at=NOW - DAY, revoked_at=NOW)

    async with new_uow() as uow:
        await uow.repository(RefreshTokenRepository).add(token)
        await uow.commit()

    async with new_uow() as uow:
        stored = await stored_token(uow, token.id)
        assert await stored_token(uow, "0" * 32) is None
    assert stored is not None
    assert vars(stored) == vars(token)


async def test_get_with_owner_reads_the_token_its_session_and_its_user_at_once(
    new_uow: UowFactory,
) -> None:
    ada = await add_user(new_uow, "ada", token_version=2)
    session = await add_session(new_uow, ada, token_version=2)
    token = await add_token(new_uow, session, rotated_at=NOW)

    async with new_uow() as uow:
        found = await uow.repository(RefreshTokenRepository).get_with_owner(token.id)
        assert await uow.repository(RefreshTokenRepository).get_with_owner("0" * 32) is None
        expected_session = await uow.repository(SessionRepository).get(session.id)
        expected_user = await uow.repository(UserRepository).get(ada.id or 0)
    assert found is not None
    stored, owning_session, user = found
    assert vars(stored) == vars(token)
    assert vars(owning_session) == vars(expected_session)
    assert vars(user) == vars(expected_user)


async def test_mark_rotated_succeeds_once_and_records_when(new_uow: UowFactory) -> None:
    session = await add_session(new_uow, await add_user(new_uow, "ada"))
    token = await add_token(new_uow, session)

    async with new_uow() as uow:
        first = await uow.repository(RefreshTokenRepository).mark_rotated(token.id, NOW)
        again = await uow.repository(RefreshTokenRepository).mark_rotated(token.id, NOW + DAY)
        await uow.commit()
    async with new_uow() as uow:
        later = await uow.repository(RefreshTokenRepository).mark_rotated(token.id, NOW + DAY)
        stored = await stored_token(uow, token.id)

    assert (first, again, later) == (True, False, False)
    assert stored is not None
    assert stored.rotated_at == NOW
    assert stored.revoked_at is None


async def test_mark_rotated_refuses_a_revoked_or_unknown_token(new_uow: UowFactory) -> None:
    session = await add_session(new_uow, await add_user(new_uow, "ada"))
    revoked = await add_token(new_uow, session, revoked_at=NOW - DAY)

    async with new_uow() as uow:
        assert await uow.repository(RefreshTokenRepository).mark_rotated(revoked.id, NOW) is False
        assert await uow.repository(RefreshTokenRepository).mark_rotated("0" * 32, NOW) is False
        await uow.commit()
        stored = await stored_token(uow, revoked.id)
    assert stored is not None
    assert stored.rotated_at is None


async def test_a_rotation_that_is_rolled_back_can_happen_again(new_uow: UowFactory) -> None:
    session = await add_session(new_uow, await add_user(new_uow, "ada"))
    token = await add_token(new_uow, session)

    async with new_uow() as uow:
        assert await uow.repository(RefreshTokenRepository).mark_rotated(token.id, NOW)
    async with new_uow() as uow:
        assert await uow.repository(RefreshTokenRepository).mark_rotated(token.id, NOW)


async def test_delete_expired_removes_expired_tokens_whatever_their_state(
    new_uow: UowFactory,
) -> None:
    session = await add_session(new_uow, await add_user(new_uow, "ada"))
    past = NOW - timedelta(microseconds=1)
    expired = [
        await add_token(new_uow, session, expires_at=past),
        await add_token(new_uow, session, expires_at=NOW - DAY, rotated_at=NOW - 2 * DAY),
        await add_token(new_uow, session, expires_at=NOW - DAY, revoked_at=NOW - 2 * DAY),
    ]
    kept = [
        await add_token(new_uow, session, expires_at=NOW),  # not yet past
        await add_token(new_uow, session, expires_at=NOW + DAY),
        await add_token(new_uow, session, expires_at=NOW + DAY, revoked_at=NOW - DAY),
        await add_token(new_uow, session, expires_at=NOW + DAY, rotated_at=NOW - DAY),
    ]

    async with new_uow() as uow:
        deleted = await uow.repository(RefreshTokenRepository).delete_expired(NOW, 100)
        await uow.commit()

    assert deleted == 3
    async with new_uow() as uow:
        assert [await stored_token(uow, t.id) for t in expired] == [None, None, None]
        assert all([await stored_token(uow, t.id) for t in kept])
        # Deleting tokens never takes their session with them.
        assert await uow.repository(SessionRepository).get(session.id) is not None


async def test_delete_expired_deletes_at_most_limit_per_call(new_uow: UowFactory) -> None:
    session = await add_session(new_uow, await add_user(new_uow, "ada"))
    expired = [await add_token(new_uow, session, expires_at=NOW - DAY) for _ in range(5)]
    live = await add_token(new_uow, session, expires_at=NOW + DAY)

    counts = []
    for _ in range(3):
        async with new_uow() as uow:
            counts.append(await uow.repository(RefreshTokenRepository).delete_expired(NOW, 2))
            await uow.commit()

    assert counts == [2, 2, 1]
    async with new_uow() as uow:
        assert [await stored_token(uow, t.id) for t in expired] == [None] * 5
        assert await stored_token(uow, live.id) is not None


async def test_delete_expired_dry_run_counts_all_expired_and_deletes_nothing(
    new_uow: UowFactory,
) -> None:
    session = await add_session(new_uow, await add_user(new_uow, "ada"))
    tokens = [await add_token(new_uow, session, expires_at=NOW - DAY) for _ in range(4)]
    tokens.append(await add_token(new_uow, session, expires_at=NOW + DAY, revoked_at=NOW))

    async with new_uow() as uow:
        counted = await uow.repository(RefreshTokenRepository).delete_expired(NOW, 1, dry_run=True)
        await uow.commit()

    assert counted == 4
    async with new_uow() as uow:
        assert all([await stored_token(uow, t.id) for t in tokens])
