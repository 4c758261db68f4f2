"""The session repository against the SessionRepository contract (domain/ports.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from adapters.database import Database
from tests.integration.builders import (
    DAY,
    NOW,
    UowFactory,
    add_session,
    add_token,
    add_user,
    count_rows,
    make_session,
    stored_token,
)


async def test_add_then_get_returns_every_field(database: Database, new_uow: UowFactory) -> None:
    ada = await add_user(database, "ada")
    session = make_session(ada, user_agent="Mozilla/5.0 " + "x" * 243, revoked_at=NOW)

    async with new_uow() as uow:
        await uow.sessions.add(session)
        await uow.commit()

    async with new_uow() as uow:
        stored = await uow.sessions.get(session.id)
        assert await uow.sessions.get("f" * 32) is None
    assert stored is not None
    assert vars(stored) == vars(session)


async def test_list_for_user_is_newest_first_with_ended_sessions_but_no_foreign_ones(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")
    bob = await add_user(database, "bob")
    oldest = await add_session(database, ada, created_at=NOW - 3 * DAY)
    newest = await add_session(database, ada, created_at=NOW - timedelta(minutes=1))
    revoked = await add_session(database, ada, created_at=NOW - 2 * DAY, revoked_at=NOW - DAY)
    await add_session(database, bob)

    async with new_uow() as uow:
        found = await uow.sessions.list_for_user(ada.id or 0)

    assert [s.id for s in found] == [newest.id, revoked.id, oldest.id]
    assert vars(found[0]) == vars(newest)
    assert vars(found[1]) == vars(revoked)


async def test_list_for_user_of_a_user_without_sessions_is_empty(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")
    async with new_uow() as uow:
        assert await uow.sessions.list_for_user(ada.id or 0) == []


async def test_extend_records_the_use_and_the_new_expiry_only(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")
    session = await add_session(database, ada)
    other = await add_session(database, ada)
    used_at = NOW + timedelta(hours=1)
    expires_at = NOW + 8 * DAY

    async with new_uow() as uow:
        await uow.sessions.extend(session.id, used_at, expires_at)
        await uow.commit()

    async with new_uow() as uow:
        stored = await uow.sessions.get(session.id)
        untouched = await uow.sessions.get(other.id)
    assert stored is not None
    assert (stored.last_used_at, stored.expires_at) == (used_at, expires_at)
    assert (stored.created_at, stored.user_agent, stored.revoked_at) == (
        session.created_at,
        session.user_agent,
        None,
    )
    assert untouched is not None
    assert vars(untouched) == vars(other)


async def test_revoke_ends_the_session_and_its_whole_token_family(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")
    session = await add_session(database, ada)
    rotated = await add_token(database, session, rotated_at=NOW - DAY)
    current = await add_token(database, session)
    earlier = await add_token(database, session, revoked_at=NOW - 2 * DAY)
    other_session = await add_session(database, ada)
    other_token = await add_token(database, other_session)

    async with new_uow() as uow:
        await uow.sessions.revoke(session.id, NOW)
        await uow.commit()

    async with new_uow() as uow:
        stored = await uow.sessions.get(session.id)
        tokens = {t.id: await stored_token(uow, t.id) for t in (rotated, current, earlier)}
        untouched_session = await uow.sessions.get(other_session.id)
        untouched_token = await stored_token(uow, other_token.id)
    assert stored is not None
    assert stored.revoked_at == NOW
    assert {tid: t.revoked_at for tid, t in tokens.items() if t} == {
        rotated.id: NOW,
        current.id: NOW,
        earlier.id: NOW - 2 * DAY,  # the first revocation is the one kept
    }
    assert untouched_session is not None
    assert untouched_session.revoked_at is None
    assert untouched_token is not None
    assert untouched_token.revoked_at is None


async def test_revoking_twice_keeps_the_first_revocation_time(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")
    session = await add_session(database, ada)

    for at in (NOW, NOW + DAY):
        async with new_uow() as uow:
            await uow.sessions.revoke(session.id, at)
            await uow.commit()

    async with new_uow() as uow:
        stored = await uow.sessions.get(session.id)
    assert stored is not None
    assert stored.revoked_at == NOW


async def test_revoke_all_ends_every_session_and_token_of_the_user_only(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")
    bob = await add_user(database, "bob")
    adas_sessions = [await add_session(database, ada) for _ in range(3)]
    already = await add_session(database, ada, revoked_at=NOW - DAY)
    adas_tokens = [await add_token(database, s) for s in adas_sessions]
    # A token left unrevoked in a revoked session is still one of the user's tokens.
    stray = await add_token(database, already)
    bobs_session = await add_session(database, bob)
    bobs_token = await add_token(database, bobs_session)

    async with new_uow() as uow:
        await uow.sessions.revoke_all(ada.id or 0, NOW)
        await uow.commit()

    async with new_uow() as uow:
        assert not any(
            s.is_active(NOW - DAY) for s in await uow.sessions.list_for_user(ada.id or 0)
        )
        sessions = [await uow.sessions.get(s.id) for s in [*adas_sessions, already]]
        tokens = [await stored_token(uow, t.id) for t in [*adas_tokens, stray]]
        bobs = await uow.sessions.get(bobs_session.id), await stored_token(uow, bobs_token.id)
    assert [s.revoked_at for s in sessions if s] == [NOW, NOW, NOW, NOW - DAY]
    assert all(t is not None and t.revoked_at is not None for t in tokens)
    assert [t.revoked_at for t in tokens if t][:3] == [NOW, NOW, NOW]
    assert [x.revoked_at for x in bobs if x] == [None, None]


async def test_delete_orphans_removes_only_expired_sessions_without_tokens(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")
    orphan = await add_session(database, ada, expires_at=NOW - DAY)
    revoked_orphan = await add_session(database, ada, expires_at=NOW - DAY, revoked_at=NOW - DAY)
    expired_with_token = await add_session(database, ada, expires_at=NOW - DAY)
    await add_token(database, expired_with_token, expires_at=NOW - DAY)
    alive_without_token = await add_session(database, ada, expires_at=NOW + DAY)
    expiring_now = await add_session(database, ada, expires_at=NOW)

    async with new_uow() as uow:
        deleted = await uow.sessions.delete_orphans(NOW, 100)
        await uow.commit()

    assert deleted == 2
    async with new_uow() as uow:
        assert await uow.sessions.get(orphan.id) is None
        assert await uow.sessions.get(revoked_orphan.id) is None
        for kept in (expired_with_token, alive_without_token, expiring_now):
            assert await uow.sessions.get(kept.id) is not None


async def test_delete_orphans_deletes_at_most_limit_per_call(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")
    for _ in range(5):
        await add_session(database, ada, expires_at=NOW - DAY)

    counts = []
    for _ in range(3):
        async with new_uow() as uow:
            counts.append(await uow.sessions.delete_orphans(NOW, 2))
            await uow.commit()

    assert counts == [2, 2, 1]
    assert (await count_rows(database))["sessions"] == 0


async def test_delete_orphans_dry_run_counts_every_expired_session_and_deletes_nothing(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")
    for _ in range(3):
        await add_session(database, ada, expires_at=NOW - DAY)
    with_token = await add_session(database, ada, expires_at=NOW - DAY)
    await add_token(database, with_token, expires_at=NOW - DAY)
    await add_session(database, ada, expires_at=NOW + DAY)

    async with new_uow() as uow:
        counted = await uow.sessions.delete_orphans(NOW, 1, dry_run=True)
        await uow.commit()

    assert counted == 4
    assert (await count_rows(database))["sessions"] == 5


@pytest.mark.parametrize(
    "user_state",
    [{"is_active": False}, {"token_version": 3}],
    ids=["inactive", "tokens-revoked-since"],
)
async def test_add_opens_no_session_for_a_user_no_longer_in_that_state(
    database: Database, new_uow: UowFactory, user_state: dict[str, object]
) -> None:
    ada = await add_user(database, "ada", **user_state)
    session = make_session(ada, token_version=0)

    async with new_uow() as uow:
        assert not await uow.sessions.add(session)
        await uow.commit()

    assert (await count_rows(database))["sessions"] == 0


async def test_add_opens_no_session_for_a_deleted_user(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")
    async with new_uow() as uow:
        await uow.users.delete(ada.id or 0)
        assert not await uow.sessions.add(make_session(ada))
        await uow.commit()

    assert (await count_rows(database))["sessions"] == 0
