"""The outbox repository on PostgreSQL: two relays claiming at once, from open
transactions. What the port promises on every backend is specified in
tests/contracts/test_outbox_repository.py."""

from __future__ import annotations

import asyncio

import pytest

from adapters.database import Database
from adapters.unit_of_work import unit_of_work

# The spec's own builders: one way to queue, claim and read messages in both suites.
from tests.contracts.test_outbox_repository import (
    LEASE,
    MINUTE,
    add,
    claim,
    get,
    ids,
    message,
    outbox,
)
from tests.integration.builders import DAY, NOW, UowFactory

# PostgreSQL: relays claiming at once -----------------------------------------------------


@pytest.mark.postgres
async def test_on_postgresql_two_open_claims_get_disjoint_messages_without_waiting(
    pg_database: Database,
) -> None:
    new_uow: UowFactory = lambda: unit_of_work(pg_database)  # noqa: E731
    messages = [message(f"m{n}@example.com", created_at=n * MINUTE) for n in range(5)]
    await add(new_uow, *messages)
    later = NOW + DAY

    async with unit_of_work(pg_database) as first:
        first_claimed = await outbox(first).claim(
            later, lease_until=later + DAY, claim="a", limit=3
        )
        # The first transaction is still open, its rows locked: the second skips them
        # rather than waiting (if it waited, it would wait for ever: the first commits
        # only after it).
        async with unit_of_work(pg_database) as second:
            second_claimed = await asyncio.wait_for(
                outbox(second).claim(later, lease_until=later + DAY, claim="b", limit=10),
                timeout=30,
            )
            await second.commit()
        await first.commit()

    assert len(first_claimed) == 3
    assert len(second_claimed) == 2
    assert set(ids(first_claimed)).isdisjoint(ids(second_claimed))
    assert set(ids(first_claimed)) | set(ids(second_claimed)) == set(ids(messages))
    for claimed, holder in ((first_claimed, "a"), (second_claimed, "b")):
        for seen in claimed:
            stored = await get(new_uow, seen.id)
            assert (stored.claim, stored.attempts) == (holder, 1)


@pytest.mark.postgres
async def test_on_postgresql_a_claim_rolled_back_leaves_its_messages_to_the_next_claim(
    pg_database: Database,
) -> None:
    new_uow: UowFactory = lambda: unit_of_work(pg_database)  # noqa: E731
    queued = message()
    await add(new_uow, queued)

    async with unit_of_work(pg_database) as first:
        assert ids(await outbox(first).claim(NOW, lease_until=LEASE, claim="a", limit=1)) == [
            queued.id
        ]
        async with unit_of_work(pg_database) as second:
            assert await outbox(second).claim(NOW, lease_until=LEASE, claim="b", limit=1) == []
        await first.rollback()

    (claimed,) = await claim(new_uow, "c")
    assert (claimed.claim, claimed.attempts) == ("c", 1)
