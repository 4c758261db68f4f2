"""application.admin.PurgeTokens wired with the units of work on real databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select

from adapters.clock import SystemClock
from adapters.database import Database
from adapters.orm import refresh_tokens, sessions, users
from adapters.refresh_token_repository import _DELETE_EXPIRED_TOKENS
from adapters.session_repository import _DELETE_ORPHAN_SESSIONS
from adapters.unit_of_work import unit_of_work
from application.retention import PurgeResult, PurgeTokens
from domain.model import new_id
from domain.ports import Clock
from tests.fakes import FakeClock
from tests.integration.builders import (
    DAY,
    NOW,
    add_session,
    add_token,
    add_user,
    count_rows,
)

INSERT_CHUNK = 20_000


def purge(database: Database, clock: Clock | None = None, batch_size: int = 1_000) -> PurgeTokens:
    # No rest between batches: what these tests check is what each batch deletes.
    return PurgeTokens(
        lambda: unit_of_work(database),
        clock or FakeClock(NOW),
        batch_size=batch_size,
        purge_pause_factor=0,
    )


async def seed_mixed(database: Database, now: datetime) -> dict[str, set[str]]:
    """One of each case the purge must tell apart; returns the ids it must keep."""
    ada = await add_user(database, "ada", created_at=now - 30 * DAY)
    kept_tokens: set[str] = set()
    kept_sessions: set[str] = set()

    # An expired session whose tokens all expired: tokens go, then the session.
    dead = await add_session(database, ada, created_at=now - 20 * DAY, expires_at=now - DAY)
    await add_token(database, dead, expires_at=now - 2 * DAY, rotated_at=now - 3 * DAY)
    await add_token(database, dead, expires_at=now - DAY)

    # A live session: its expired, rotated ancestor goes; its current token stays.
    live = await add_session(database, ada, expires_at=now + DAY)
    await add_token(database, live, expires_at=now - DAY, rotated_at=now - 2 * DAY)
    kept_tokens.add((await add_token(database, live, expires_at=now + DAY)).id)
    kept_sessions.add(live.id)

    # A revoked session whose token has not expired: kept, so reuse is still detected.
    revoked = await add_session(database, ada, expires_at=now + DAY, revoked_at=now - DAY)
    token = await add_token(database, revoked, expires_at=now + DAY, revoked_at=now - DAY)
    kept_tokens.add(token.id)
    rotated = await add_token(database, revoked, expires_at=now + DAY, rotated_at=now - DAY)
    kept_tokens.add(rotated.id)
    kept_sessions.add(revoked.id)

    # An expired session with no token at all: an orphan.
    await add_session(database, ada, created_at=now - 40 * DAY, expires_at=now - 30 * DAY)

    # An expired session still holding an unexpired token is not an orphan.
    odd = await add_session(database, ada, expires_at=now - DAY)
    kept_tokens.add((await add_token(database, odd, expires_at=now + DAY)).id)
    kept_sessions.add(odd.id)

    # A live session without tokens is not expired, so not an orphan either.
    kept_sessions.add((await add_session(database, ada, expires_at=now + DAY)).id)
    return {"tokens": kept_tokens, "sessions": kept_sessions}


async def remaining_ids(database: Database) -> dict[str, set[str]]:
    async with database.engine.connect() as conn:
        tokens = await conn.scalars(select(refresh_tokens.c.id))
        session_ids = await conn.scalars(select(sessions.c.id))
        return {"tokens": set(tokens), "sessions": set(session_ids)}


async def test_purge_deletes_expired_tokens_and_orphan_sessions_and_keeps_the_rest(
    database: Database,
) -> None:
    kept = await seed_mixed(database, NOW)
    progress: list[int] = []

    result = await purge(database)(on_progress=progress.append)

    assert result == PurgeResult(tokens=3, sessions=2, batches=2, dry_run=False)
    assert progress == [3, 2]
    assert await remaining_ids(database) == kept
    assert (await count_rows(database))["users"] == 1


async def test_purge_with_the_system_clock_uses_the_current_time(database: Database) -> None:
    kept = await seed_mixed(database, datetime.now(UTC))

    result = await purge(database, SystemClock())()

    assert (result.tokens, result.sessions) == (3, 2)
    assert await remaining_ids(database) == kept


async def test_purge_dry_run_counts_what_would_go_and_deletes_nothing(
    database: Database,
) -> None:
    await seed_mixed(database, NOW)
    before = await remaining_ids(database)

    result = await purge(database, batch_size=1)(dry_run=True)

    # Every expired session counts: its tokens would all be purged first.
    assert result == PurgeResult(tokens=3, sessions=3, batches=0, dry_run=True)
    assert await remaining_ids(database) == before


async def test_purge_of_a_clean_database_deletes_nothing(database: Database) -> None:
    ada = await add_user(database, "ada")
    await add_token(database, await add_session(database, ada, expires_at=NOW + DAY))

    result = await purge(database)()

    assert result == PurgeResult(tokens=0, sessions=0, batches=0, dry_run=False)
    assert await count_rows(database) == {"users": 1, "sessions": 1, "refresh_tokens": 1}


async def test_a_second_purge_finds_nothing_left(database: Database) -> None:
    await seed_mixed(database, NOW)
    await purge(database)()

    again = await purge(database)()

    assert (again.tokens, again.sessions, again.batches) == (0, 0, 0)


async def seed_expired_tokens(database: Database, sessions_count: int, per_session: int) -> None:
    """Expired sessions full of expired tokens, inserted in bulk (executemany)."""
    async with database.engine.begin() as conn:
        user_id = (
            await conn.execute(
                insert(users)
                .values(
                    email="bulk@example.com",
                    username="bulk",
                    password_hash="x",
                    created_at=NOW - 30 * DAY,
                )
                .returning(users.c.id)
            )
        ).scalar_one()
        session_ids = [new_id() for _ in range(sessions_count)]
        await conn.execute(
            insert(sessions),
            [
                {
                    "id": sid,
                    "user_id": user_id,
                    "created_at": NOW - 10 * DAY,
                    "last_used_at": NOW - 3 * DAY,
                    "expires_at": NOW - DAY,
                    "authenticated_at": NOW - 10 * DAY,
                }
                for sid in session_ids
            ],
        )
        rows = [
            {
                "id": new_id(),
                "session_id": sid,
                "user_id": user_id,
                "created_at": NOW - 10 * DAY,
                "expires_at": NOW - DAY,
                "rotated_at": NOW - 3 * DAY,
                "revoked_at": None,
            }
            for sid in session_ids
            for _ in range(per_session)
        ]
        for start in range(0, len(rows), INSERT_CHUNK):
            await conn.execute(insert(refresh_tokens), rows[start : start + INSERT_CHUNK])


@pytest.mark.parametrize(
    ("total", "batch_size", "token_batches"),
    [(2_500, 1_000, [1_000, 1_000, 500]), (2_000, 1_000, [1_000, 1_000])],
    ids=["partial-last-batch", "exact-multiple"],
)
async def test_purge_deletes_in_batches_of_batch_size(
    database: Database, total: int, batch_size: int, token_batches: list[int]
) -> None:
    await seed_expired_tokens(database, sessions_count=25, per_session=total // 25)
    ada = await add_user(database, "ada")
    live = await add_token(database, await add_session(database, ada, expires_at=NOW + DAY))
    progress: list[int] = []

    result = await purge(database, batch_size=batch_size)(on_progress=progress.append)

    assert progress == [*token_batches, 25]
    assert result == PurgeResult(
        tokens=total, sessions=25, batches=len(token_batches) + 1, dry_run=False
    )
    assert await remaining_ids(database) == {"tokens": {live.id}, "sessions": {live.session_id}}


@pytest.mark.postgres
@pytest.mark.slow
async def test_purge_of_200_000_expired_tokens_takes_20_batches_of_10_000(
    pg_database: Database,
) -> None:
    await seed_expired_tokens(pg_database, sessions_count=200, per_session=1_000)
    assert (await count_rows(pg_database))["refresh_tokens"] == 200_000
    progress: list[int] = []

    result = await purge(pg_database, batch_size=10_000)(on_progress=progress.append)

    assert progress == [10_000] * 20 + [200]
    assert result == PurgeResult(tokens=200_000, sessions=200, batches=21, dry_run=False)
    assert await count_rows(pg_database) == {"users": 1, "sessions": 0, "refresh_tokens": 0}


@pytest.mark.postgres
@pytest.mark.parametrize("table", ["refresh_tokens", "sessions"])
async def test_a_purge_batch_on_postgresql_reads_only_its_own_rows(
    pg_database: Database, table: str
) -> None:
    """The cost of a batch must not grow with the table: its rows are found through the
    batch's own select and deleted by address (a TID scan), never by joining the batch
    back to a scan of the whole table (which made the purge slow as it went)."""
    statement = {"refresh_tokens": _DELETE_EXPIRED_TOKENS, "sessions": _DELETE_ORPHAN_SESSIONS}
    async with pg_database.engine.connect() as conn:
        compiled = statement[table].compile(conn.sync_connection)
        values = compiled.construct_params({"now": NOW, "limit": 1_000})
        args = [values[name] for name in compiled.positiontup or ()]
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        async with driver.transaction():
            # As if the table were large, so the planner cannot prefer a scan for size.
            await driver.execute("SET LOCAL enable_seqscan = off")
            plan = "\n".join(row[0] for row in await driver.fetch(f"EXPLAIN {compiled}", *args))
    assert f"Tid Scan on {table}" in plan, plan
    assert "Hash Semi Join" not in plan, plan
