"""The outbox repository on PostgreSQL: two relays claiming at once, from open
transactions. What the port promises on every backend is specified in
tests/contracts/test_outbox_repository.py."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from adapters.database import Database
from adapters.unit_of_work import unit_of_work
from domain.outbox import OutboxMessage, OutboxRepository, Template
from domain.ports import UnitOfWork
from tests.integration.builders import DAY, NOW, UowFactory

MINUTE = timedelta(minutes=1)
LEASE = NOW + 5 * MINUTE


def message(
    recipient: str = "ada@example.com",
    *,
    created_at: timedelta = timedelta(0),
    due_in: timedelta | None = None,
    template: Template = Template.PASSWORD_CHANGED,
    **fields: object,
) -> OutboxMessage:
    """A pending message queued ``created_at`` after NOW, due ``due_in`` after NOW
    (by default when it was queued)."""
    queued = OutboxMessage.queue(
        template,
        recipient,
        NOW + created_at,
        context={"username": recipient.split("@", maxsplit=1)[0]},
    )
    if due_in is not None:
        queued.next_attempt_at = NOW + due_in
    for name, value in fields.items():
        setattr(queued, name, value)
    return queued


def outbox(uow: UnitOfWork) -> OutboxRepository:
    return uow.repository(OutboxRepository)


async def add(new_uow: UowFactory, *messages: OutboxMessage) -> None:
    async with new_uow() as uow:
        for queued in messages:
            await outbox(uow).add(queued)
        await uow.commit()


async def claim(
    new_uow: UowFactory,
    claim_id: str,
    *,
    now: datetime = NOW,
    limit: int = 50,
    lease: datetime = LEASE,
) -> list[OutboxMessage]:
    """One committed claim."""
    async with new_uow() as uow:
        claimed = await outbox(uow).claim(now, lease_until=lease, claim=claim_id, limit=limit)
        await uow.commit()
    return claimed


async def get(new_uow: UowFactory, message_id: str) -> OutboxMessage:
    async with new_uow() as uow:
        found = await outbox(uow).get(message_id)
    assert found is not None
    return found


def ids(messages: list[OutboxMessage]) -> list[str]:
    return [m.id for m in messages]


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
