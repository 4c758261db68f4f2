"""The refresh token repository against the RefreshTokenRepository contract
(domain/ports.py)."""

from __future__ import annotations

from datetime import timedelta

from adapters.database import Database
from tests.integration.builders import (
    DAY,
    NOW,
    UowFactory,
    add_session,
    add_token,
    add_user,
    count_rows,
    make_token,
    stored_token,
)


async def test_add_then_get_returns_every_field(database: Database, new_uow: UowFactory) -> None:
    session = await add_session(database, await add_user(database, "ada"))
    token = make_token(session, rotated_at=NOW - DAY, revoked_at=NOW)

    async with new_uow() as uow:
        await uow.refresh_tokens.add(token)
        await uow.commit()

    async with new_uow() as uow:
        stored = await stored_token(uow, token.id)
        assert await stored_token(uow, "0" * 32) is None
    assert stored is not None
    assert vars(stored) == vars(token)


async def test_mark_rotated_succeeds_once_and_records_when(
    database: Database, new_uow: UowFactory
) -> None:
    session = await add_session(database, await add_user(database, "ada"))
    token = await add_token(database, session)

    async with new_uow() as uow:
        first = await uow.refresh_tokens.mark_rotated(token.id, NOW)
        again = await uow.refresh_tokens.mark_rotated(token.id, NOW + DAY)
        await uow.commit()
    async with new_uow() as uow:
        later = await uow.refresh_tokens.mark_rotated(token.id, NOW + DAY)
        stored = await stored_token(uow, token.id)

    assert (first, again, later) == (True, False, False)
    assert stored is not None
    assert stored.rotated_at == NOW
    assert stored.revoked_at is None


async def test_mark_rotated_refuses_a_revoked_or_unknown_token(
    database: Database, new_uow: UowFactory
) -> None:
    session = await add_session(database, await add_user(database, "ada"))
    revoked = await add_token(database, session, revoked_at=NOW - DAY)

    async with new_uow() as uow:
        assert await uow.refresh_tokens.mark_rotated(revoked.id, NOW) is False
        assert await uow.refresh_tokens.mark_rotated("0" * 32, NOW) is False
        await uow.commit()
        stored = await stored_token(uow, revoked.id)
    assert stored is not None
    assert stored.rotated_at is None


async def test_a_rotation_that_is_rolled_back_can_happen_again(
    database: Database, new_uow: UowFactory
) -> None:
    session = await add_session(database, await add_user(database, "ada"))
    token = await add_token(database, session)

    async with new_uow() as uow:
        assert await uow.refresh_tokens.mark_rotated(token.id, NOW)
    async with new_uow() as uow:
        assert await uow.refresh_tokens.mark_rotated(token.id, NOW)


async def test_delete_expired_removes_expired_tokens_whatever_their_state(
    database: Database, new_uow: UowFactory
) -> None:
    session = await add_session(database, await add_user(database, "ada"))
    past = NOW - timedelta(microseconds=1)
    expired = [
        await add_token(database, session, expires_at=past),
        await add_token(database, session, expires_at=NOW - DAY, rotated_at=NOW - 2 * DAY),
        await add_token(database, session, expires_at=NOW - DAY, revoked_at=NOW - 2 * DAY),
    ]
    kept = [
        await add_token(database, session, expires_at=NOW),  # not yet past
        await add_token(database, session, expires_at=NOW + DAY),
        await add_token(database, session, expires_at=NOW + DAY, revoked_at=NOW - DAY),
        await add_token(database, session, expires_at=NOW + DAY, rotated_at=NOW - DAY),
    ]

    async with new_uow() as uow:
        deleted = await uow.refresh_tokens.delete_expired(NOW, 100)
        await uow.commit()

    assert deleted == 3
    async with new_uow() as uow:
        assert [await stored_token(uow, t.id) for t in expired] == [None, None, None]
        assert all([await stored_token(uow, t.id) for t in kept])
    # Deleting tokens never takes their session with them.
    assert (await count_rows(database))["sessions"] == 1


async def test_delete_expired_deletes_at_most_limit_per_call(
    database: Database, new_uow: UowFactory
) -> None:
    session = await add_session(database, await add_user(database, "ada"))
    for _ in range(5):
        await add_token(database, session, expires_at=NOW - DAY)
    await add_token(database, session, expires_at=NOW + DAY)

    counts = []
    for _ in range(3):
        async with new_uow() as uow:
            counts.append(await uow.refresh_tokens.delete_expired(NOW, 2))
            await uow.commit()

    assert counts == [2, 2, 1]
    assert (await count_rows(database))["refresh_tokens"] == 1


async def test_delete_expired_dry_run_counts_all_expired_and_deletes_nothing(
    database: Database, new_uow: UowFactory
) -> None:
    session = await add_session(database, await add_user(database, "ada"))
    for _ in range(4):
        await add_token(database, session, expires_at=NOW - DAY)
    await add_token(database, session, expires_at=NOW + DAY, revoked_at=NOW)

    async with new_uow() as uow:
        counted = await uow.refresh_tokens.delete_expired(NOW, 1, dry_run=True)
        await uow.commit()

    assert counted == 4
    assert (await count_rows(database))["refresh_tokens"] == 5


async def test_get_with_owner_reads_the_token_its_session_and_its_user_at_once(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada", token_version=2)
    session = await add_session(database, ada, token_version=2)
    token = await add_token(database, session, rotated_at=NOW)

    async with new_uow() as uow:
        found = await uow.refresh_tokens.get_with_owner(token.id)
        assert await uow.refresh_tokens.get_with_owner("0" * 32) is None
        expected_session = await uow.sessions.get(session.id)
        expected_user = await uow.users.get(ada.id or 0)
    assert found is not None
    stored, owning_session, user = found
    assert vars(stored) == vars(token)
    assert vars(owning_session) == vars(expected_session)
    assert vars(user) == vars(expected_user)
