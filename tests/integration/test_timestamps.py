"""Timestamps are timezone-aware UTC on both databases, exact to the microsecond,
and compare correctly in SQL whatever offset they were given in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.exc import StatementError

from adapters.database import Database
from domain.ports import RefreshTokenRepository, SessionRepository, UserRepository
from tests.integration.builders import (
    NOW,
    UowFactory,
    add_session,
    add_user,
    make_session,
    make_token,
    make_user,
    stored_token,
)

PARIS_SUMMER = timezone(timedelta(hours=2))
EXACT = datetime(2031, 7, 14, 23, 59, 58, 987654, tzinfo=UTC)


def is_utc(value: datetime | None) -> bool:
    return value is not None and value.utcoffset() == timedelta(0)


async def test_every_timestamp_round_trips_exactly_as_aware_utc(
    database: Database, new_uow: UowFactory
) -> None:
    stamps = [EXACT + timedelta(microseconds=n) for n in range(7)]
    async with new_uow() as uow:
        user = await uow.repository(UserRepository).add(make_user("ada", created_at=stamps[0]))
        session = make_session(
            user,
            created_at=stamps[1],
            last_used_at=stamps[2],
            expires_at=stamps[3],
            revoked_at=stamps[4],
        )
        await uow.repository(SessionRepository).add(session)
        token = make_token(session, rotated_at=stamps[5], revoked_at=stamps[6])
        await uow.repository(RefreshTokenRepository).add(token)
        await uow.commit()

    async with new_uow() as uow:
        stored_user = await uow.repository(UserRepository).get(user.id or 0)
        stored_session = await uow.repository(SessionRepository).get(session.id)
        token_read = await stored_token(uow, token.id)
        joined = await uow.repository(UserRepository).get_with_session(user.id or 0, session.id)

    assert stored_user is not None
    assert stored_session is not None
    assert token_read is not None
    assert joined is not None
    assert joined[1] is not None
    read = [
        stored_user.created_at,
        stored_session.created_at,
        stored_session.last_used_at,
        stored_session.expires_at,
        stored_session.revoked_at,
        token_read.rotated_at,
        token_read.revoked_at,
    ]
    assert read == stamps
    assert all(is_utc(value) for value in read)
    assert [value.microsecond for value in read if value] == [987654 + n for n in range(7)]
    assert vars(joined[1]) == vars(stored_session)
    assert all(is_utc(value) for value in vars(joined[1]).values() if isinstance(value, datetime))


async def test_a_timestamp_given_in_another_offset_comes_back_as_the_same_instant_in_utc(
    database: Database, new_uow: UowFactory
) -> None:
    local = datetime(2031, 7, 15, 1, 59, 58, 987654, tzinfo=PARIS_SUMMER)
    user = await add_user(database, "ada", created_at=local)

    async with new_uow() as uow:
        stored = await uow.repository(UserRepository).get(user.id or 0)

    assert stored is not None
    assert stored.created_at == EXACT
    assert stored.created_at.tzinfo == UTC


async def test_sql_comparisons_use_the_instant_not_the_written_offset(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")
    # 13:30 at +02:00 is 11:30 UTC: already past at NOW (12:00 UTC), although its
    # wall-clock reading is later.
    gone = await add_session(
        database, ada, expires_at=datetime(2030, 1, 1, 13, 30, tzinfo=PARIS_SUMMER)
    )
    # 10:30 at -05:00 is 15:30 UTC: still ahead.
    alive = await add_session(
        database, ada, expires_at=datetime(2030, 1, 1, 10, 30, tzinfo=timezone(-timedelta(hours=5)))
    )

    async with new_uow() as uow:
        active = [
            s
            for s in await uow.repository(SessionRepository).list_for_user(ada.id or 0)
            if s.is_active(NOW)
        ]
        deleted = await uow.repository(SessionRepository).delete_orphans(
            NOW.astimezone(PARIS_SUMMER), 10
        )
        await uow.commit()

    assert [s.id for s in active] == [alive.id]
    assert deleted == 1
    async with new_uow() as uow:
        assert await uow.repository(SessionRepository).get(gone.id) is None


async def test_a_naive_timestamp_is_refused(new_uow: UowFactory) -> None:
    # SQLAlchemy wraps the column type's ValueError in a StatementError; asyncpg's
    # executor lets it through as is.
    with pytest.raises((StatementError, ValueError), match="naive datetime"):
        async with new_uow() as uow:
            await uow.repository(UserRepository).add(
                make_user("ada", created_at=datetime(2030, 1, 1, 12, 0))
            )
