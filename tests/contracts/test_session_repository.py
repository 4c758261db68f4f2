"""The SessionRepository contract (SessionRepository, domain/ports.py): what the fake and
the SQL adapter on SQLite and PostgreSQL alike must do."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.ports import SessionRepository, UserRepository
from tests.contracts.builders import (
    DAY,
    NOW,
    UowFactory,
    add_session,
    add_token,
    add_user,
    make_session,
    stored_token,
)


async def test_add_then_get_returns_every_field(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "ada")
    session = make_session(ada, user_agent="Mozilla/5.0 " + "x" * 243, revoked_at=NOW)

    async with new_uow() as uow:
        assert await uow.repository(SessionRepository).add(session) is True
        await uow.commit()

    async with new_uow() as uow:
        stored = await uow.repository(SessionRepository).get(session.id)
        assert await uow.repository(SessionRepository).get("f" * 32) is None
    assert stored is not None
    assert vars(stored) == vars(session)


@pytest.mark.parametrize(
    "user_state",
    [{"is_active": False}, {"token_version": 3}],
    ids=["inactive", "tokens-revoked-since"],
)
async def test_add_opens_no_session_for_a_user_no_longer_in_that_state(
    new_uow: UowFactory, user_state: dict[str, object]
) -> None:
    ada = await add_user(new_uow, "ada", **user_state)
    session = make_session(ada, token_version=0)

    async with new_uow() as uow:
        assert not await uow.repository(SessionRepository).add(session)
        await uow.commit()

    async with new_uow() as uow:
        assert await uow.repository(SessionRepository).get(session.id) is None
        assert await uow.repository(SessionRepository).list_for_user(ada.id or 0) == []


async def test_add_opens_no_session_for_a_deleted_user(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "ada")
    session = make_session(ada)
    async with new_uow() as uow:
        await uow.repository(UserRepository).delete(ada.id or 0)
        assert not await uow.repository(SessionRepository).add(session)
        await uow.commit()

    async with new_uow() as uow:
        assert await uow.repository(SessionRepository).get(session.id) is None


async def test_list_for_user_is_newest_first_with_ended_sessions_but_no_foreign_ones(
    new_uow: UowFactory,
) -> None:
    ada = await add_user(new_uow, "ada")
    bob = await add_user(new_uow, "bob")
    oldest = await add_session(new_uow, ada, created_at=NOW - 3 * DAY)
    newest = await add_session(new_uow, ada, created_at=NOW - timedelta(minutes=1))
    revoked = await add_session(new_uow, ada, created_at=NOW - 2 * DAY, revoked_at=NOW - DAY)
    await add_session(new_uow, bob)

    async with new_uow() as uow:
        found = await uow.repository(SessionRepository).list_for_user(ada.id or 0)

    assert [s.id for s in found] == [newest.id, revoked.id, oldest.id]
    assert vars(found[0]) == vars(newest)
    assert vars(found[1]) == vars(revoked)


async def test_list_for_user_of_a_user_without_sessions_is_empty(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "ada")
    async with new_uow() as uow:
        assert await uow.repository(SessionRepository).list_for_user(ada.id or 0) == []


async def test_extend_records_the_use_and_the_new_expiry_only(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "ada")
    session = await add_session(new_uow, ada)
    other = await add_session(new_uow, ada)
    used_at = NOW + timedelta(hours=1)
    expires_at = NOW + 8 * DAY

    async with new_uow() as uow:
        await uow.repository(SessionRepository).extend(session.id, used_at, expires_at)
        await uow.commit()

    async with new_uow() as uow:
        stored = await uow.repository(SessionRepository).get(session.id)
        untouched = await uow.repository(SessionRepository).get(other.id)
    assert stored is not None
    assert (stored.last_used_at, stored.expires_at) == (used_at, expires_at)
    assert (stored.created_at, stored.user_agent, stored.revoked_at) == (
        session.created_at,
        session.user_agent,
        None,
    )
    assert untouched is not None
    assert vars(untouched) == vars(other)


async def test_extending_or_revoking_a_session_that_is_gone_changes_nothing(
    new_uow: UowFactory,
) -> None:
    ada = await add_user(new_uow, "ada")
    session = await add_session(new_uow, ada)

    async with new_uow() as uow:
        await uow.repository(SessionRepository).extend("f" * 32, NOW, NOW + DAY)
        await uow.repository(SessionRepository).revoke("f" * 32, NOW)
        await uow.commit()

    async with new_uow() as uow:
        assert await uow.repository(SessionRepository).get("f" * 32) is None
        stored = await uow.repository(SessionRepository).list_for_user(ada.id or 0)
    assert [vars(s) for s in stored] == [vars(session)]


async def test_revoke_ends_the_session_and_its_whole_token_family(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "ada")
    session = await add_session(new_uow, ada)
    rotated = await add_token(new_uow, session, rotated_at=NOW - DAY)
    current = await add_token(new_uow, session)
    earlier = await add_token(new_uow, session, revoked_at=NOW - 2 * DAY)
    other_session = await add_session(new_uow, ada)
    other_token = await add_token(new_uow, other_session)

    async with new_uow() as uow:
        await uow.repository(SessionRepository).revoke(session.id, NOW)
        await uow.commit()

    async with new_uow() as uow:
        stored = await uow.repository(SessionRepository).get(session.id)
        tokens = {t.id: await stored_token(uow, t.id) for t in (rotated, current, earlier)}
        untouched_session = await uow.repository(SessionRepository).get(other_session.id)
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


async def test_revoking_twice_keeps_the_first_revocation_time(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "ada")
    session = await add_session(new_uow, ada)

    for at in (NOW, NOW + DAY):
        async with new_uow() as uow:
            await uow.repository(SessionRepository).revoke(session.id, at)
            await uow.commit()

    async with new_uow() as uow:
        stored = await uow.repository(SessionRepository).get(session.id)
    assert stored is not None
    assert stored.revoked_at == NOW


async def test_revoke_all_ends_every_session_and_token_of_the_user_only(
    new_uow: UowFactory,
) -> None:
    ada = await add_user(new_uow, "ada")
    bob = await add_user(new_uow, "bob")
    adas_sessions = [await add_session(new_uow, ada) for _ in range(3)]
    already = await add_session(new_uow, ada, revoked_at=NOW - DAY)
    adas_tokens = [await add_token(new_uow, s) for s in adas_sessions]
    # A token left unrevoked in a revoked session is still one of the user's tokens.
    stray = await add_token(new_uow, already)
    bobs_session = await add_session(new_uow, bob)
    bobs_token = await add_token(new_uow, bobs_session)

    async with new_uow() as uow:
        await uow.repository(SessionRepository).revoke_all(ada.id or 0, NOW)
        await uow.commit()

    async with new_uow() as uow:
        assert not any(
            s.is_active(NOW - DAY)
            for s in await uow.repository(SessionRepository).list_for_user(ada.id or 0)
        )
        sessions = [
            await uow.repository(SessionRepository).get(s.id) for s in [*adas_sessions, already]
        ]
        tokens = [await stored_token(uow, t.id) for t in [*adas_tokens, stray]]
        bobs = (
            await uow.repository(SessionRepository).get(bobs_session.id),
            await stored_token(uow, bobs_token.id),
        )
    assert [s.revoked_at for s in sessions if s] == [NOW, NOW, NOW, NOW - DAY]
    assert [t.revoked_at for t in tokens if t] == [NOW, NOW, NOW, NOW]
    assert [x.revoked_at for x in bobs if x] == [None, None]


async def test_delete_orphans_removes_only_expired_sessions_without_tokens(
    new_uow: UowFactory,
) -> None:
    ada = await add_user(new_uow, "ada")
    orphan = await add_session(new_uow, ada, expires_at=NOW - DAY)
    revoked_orphan = await add_session(new_uow, ada, expires_at=NOW - DAY, revoked_at=NOW - DAY)
    expired_with_token = await add_session(new_uow, ada, expires_at=NOW - DAY)
    await add_token(new_uow, expired_with_token, expires_at=NOW - DAY)
    alive_without_token = await add_session(new_uow, ada, expires_at=NOW + DAY)
    expiring_now = await add_session(new_uow, ada, expires_at=NOW)

    async with new_uow() as uow:
        deleted = await uow.repository(SessionRepository).delete_orphans(NOW, 100)
        await uow.commit()

    assert deleted == 2
    async with new_uow() as uow:
        assert await uow.repository(SessionRepository).get(orphan.id) is None
        assert await uow.repository(SessionRepository).get(revoked_orphan.id) is None
        for kept in (expired_with_token, alive_without_token, expiring_now):
            assert await uow.repository(SessionRepository).get(kept.id) is not None


async def test_delete_orphans_deletes_at_most_limit_per_call(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "ada")
    for _ in range(5):
        await add_session(new_uow, ada, expires_at=NOW - DAY)

    counts = []
    for _ in range(3):
        async with new_uow() as uow:
            counts.append(await uow.repository(SessionRepository).delete_orphans(NOW, 2))
            await uow.commit()

    assert counts == [2, 2, 1]
    async with new_uow() as uow:
        assert await uow.repository(SessionRepository).list_for_user(ada.id or 0) == []


async def test_delete_orphans_dry_run_counts_every_expired_session_and_deletes_nothing(
    new_uow: UowFactory,
) -> None:
    ada = await add_user(new_uow, "ada")
    for _ in range(3):
        await add_session(new_uow, ada, expires_at=NOW - DAY)
    with_token = await add_session(new_uow, ada, expires_at=NOW - DAY)
    await add_token(new_uow, with_token, expires_at=NOW - DAY)
    await add_session(new_uow, ada, expires_at=NOW + DAY)

    async with new_uow() as uow:
        counted = await uow.repository(SessionRepository).delete_orphans(NOW, 1, dry_run=True)
        await uow.commit()

    assert counted == 4
    async with new_uow() as uow:
        assert len(await uow.repository(SessionRepository).list_for_user(ada.id or 0)) == 5


async def test_a_new_session_is_authenticated_when_it_is_opened(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "ada")
    session = await add_session(new_uow, ada)
    async with new_uow() as uow:
        stored = await uow.repository(SessionRepository).get(session.id)
    assert stored is not None
    assert stored.authenticated_at == session.created_at


async def test_mark_authenticated_moves_only_a_live_session(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "ada")
    live = await add_session(new_uow, ada)
    revoked = await add_session(new_uow, ada, revoked_at=NOW)
    expired = await add_session(new_uow, ada, expires_at=NOW + timedelta(minutes=1))
    at = NOW + timedelta(minutes=5)

    async with new_uow() as uow:
        sessions = uow.repository(SessionRepository)
        assert await sessions.mark_authenticated(live.id, at) is True
        assert await sessions.mark_authenticated(revoked.id, at) is False
        assert await sessions.mark_authenticated(expired.id, at) is False
        assert await sessions.mark_authenticated("f" * 32, at) is False
        await uow.commit()

    async with new_uow() as uow:
        stored = {
            s.id: s for s in await uow.repository(SessionRepository).list_for_user(ada.id or 0)
        }
    assert stored[live.id].authenticated_at == at
    assert stored[live.id].last_used_at == live.last_used_at  # not a use of its tokens
    assert stored[revoked.id].authenticated_at == revoked.created_at
    assert stored[expired.id].authenticated_at == expired.created_at
