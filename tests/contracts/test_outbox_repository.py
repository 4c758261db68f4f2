"""The OutboxRepository contract (OutboxRepository, domain/outbox.py): what a queued
message reads back as, how relays claim and settle messages, and how operators retry,
list, count and purge them; on the fake and on the SQL adapter alike.

Relays claiming at once from open transactions are PostgreSQL's alone: they stay in
tests/integration/test_outbox_repository.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from domain.model import new_id
from domain.outbox import OutboxMessage, OutboxRepository, Status, Template
from domain.ports import UnitOfWork
from tests.contracts.builders import DAY, NOW, UowFactory

# The longest error a message keeps (the SQL column's length): an SMTP error may be long.
ERROR_MAX_LENGTH = 500
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


async def test_an_added_message_reads_back_with_every_field(new_uow: UowFactory) -> None:
    queued = message(
        "zoë@example.com",
        user_id=42,
        context={"username": "zoë", "new_email": "z***@example.org", "quote": "<\"'&>"},
        template=Template.EMAIL_CHANGED,
    )
    await add(new_uow, queued)

    stored = await get(new_uow, queued.id)
    async with new_uow() as uow:
        assert await outbox(uow).get(new_id()) is None

    assert vars(stored) == vars(queued)
    assert stored.status is Status.PENDING
    assert stored.template is Template.EMAIL_CHANGED
    assert stored.attempts == 0
    assert stored.claim is None


async def test_a_claimed_message_has_the_claim_one_more_attempt_and_is_due_at_the_lease_end(
    new_uow: UowFactory,
) -> None:
    queued = message()
    await add(new_uow, queued)

    (claimed,) = await claim(new_uow, "relay-a")
    stored = await get(new_uow, queued.id)

    for seen in (claimed, stored):
        assert seen.id == queued.id
        assert seen.claim == "relay-a"
        assert seen.attempts == 1
        assert seen.next_attempt_at == LEASE
        assert seen.status is Status.PENDING
        assert seen.context == queued.context
        assert seen.recipient == queued.recipient


async def test_claim_skips_messages_that_are_not_yet_due(new_uow: UowFactory) -> None:
    due_now, due_later = message("now@example.com"), message("later@example.com", due_in=MINUTE)
    await add(new_uow, due_now, due_later)

    assert ids(await claim(new_uow, "first")) == [due_now.id]
    # Due exactly now counts as due.
    assert ids(await claim(new_uow, "second", now=NOW + MINUTE)) == [due_later.id]
    assert await claim(new_uow, "third", now=NOW + MINUTE) == []


async def test_claim_skips_sent_and_dead_messages(new_uow: UowFactory) -> None:
    sent = message("sent@example.com", status=Status.SENT, sent_at=NOW - MINUTE)
    dead = message("dead@example.com", status=Status.DEAD, attempts=8, last_error="550 no")
    pending = message("pending@example.com")
    await add(new_uow, sent, dead, pending)

    assert ids(await claim(new_uow, "relay", now=NOW + DAY)) == [pending.id]
    assert (await get(new_uow, sent.id)).attempts == 0
    assert (await get(new_uow, dead.id)).attempts == 8


async def test_claim_respects_the_limit_and_takes_the_longest_due_first(
    new_uow: UowFactory,
) -> None:
    # Queued in one order, due in another: the claim goes by when they are due.
    messages = [
        message("a@example.com", created_at=0 * MINUTE, due_in=4 * MINUTE),
        message("b@example.com", created_at=1 * MINUTE, due_in=1 * MINUTE),
        message("c@example.com", created_at=2 * MINUTE, due_in=3 * MINUTE),
        message("d@example.com", created_at=3 * MINUTE, due_in=0 * MINUTE),
        message("e@example.com", created_at=4 * MINUTE, due_in=2 * MINUTE),
    ]
    await add(new_uow, *messages)
    later = NOW + 10 * MINUTE

    first = await claim(new_uow, "one", now=later, limit=2, lease=later + DAY)
    second = await claim(new_uow, "two", now=later, limit=2, lease=later + DAY)
    third = await claim(new_uow, "three", now=later, limit=2, lease=later + DAY)

    a, b, c, d, e = ids(messages)
    assert set(ids(first)) == {d, b}
    assert set(ids(second)) == {e, c}
    assert ids(third) == [a]
    # Each batch comes back in the order the messages were queued.
    assert ids(first) == [b, d]
    assert ids(second) == [c, e]


async def test_a_claimed_message_is_not_claimed_again_until_its_lease_has_passed(
    new_uow: UowFactory,
) -> None:
    queued = message()
    await add(new_uow, queued)
    await claim(new_uow, "dead-relay")

    assert await claim(new_uow, "early", now=LEASE - timedelta(seconds=1)) == []
    (again,) = await claim(new_uow, "late", now=LEASE, lease=LEASE + 5 * MINUTE)

    assert again.claim == "late"
    assert again.attempts == 2
    assert again.next_attempt_at == LEASE + 5 * MINUTE
    # The relay whose lease ran out can no longer settle it; the new holder can.
    async with new_uow() as uow:
        assert await outbox(uow).mark_sent(queued.id, "dead-relay", LEASE) is False
        assert await outbox(uow).mark_sent(queued.id, "late", LEASE) is True
        await uow.commit()
    assert (await get(new_uow, queued.id)).status is Status.SENT


async def test_a_message_claimed_by_one_claim_cannot_be_settled_with_another(
    new_uow: UowFactory,
) -> None:
    queued = message()
    await add(new_uow, queued)
    await claim(new_uow, "mine")

    async with new_uow() as uow:
        repo = outbox(uow)
        assert await repo.mark_sent(queued.id, "theirs", NOW) is False
        assert await repo.mark_failed(queued.id, "theirs", "421 busy", NOW + MINUTE) is False
        assert await repo.mark_failed(queued.id, "theirs", "550 no", None) is False
        assert await repo.mark_sent(new_id(), "mine", NOW) is False  # no such message
        await uow.commit()

    stored = await get(new_uow, queued.id)
    assert stored.status is Status.PENDING
    assert stored.claim == "mine"
    assert stored.last_error is None
    assert stored.next_attempt_at == LEASE


async def test_mark_sent_settles_the_message_once(new_uow: UowFactory) -> None:
    queued = message(last_error="an earlier failure")
    await add(new_uow, queued)
    await claim(new_uow, "relay")

    async with new_uow() as uow:
        first = await outbox(uow).mark_sent(queued.id, "relay", NOW + MINUTE)
        again = await outbox(uow).mark_sent(queued.id, "relay", NOW + 2 * MINUTE)
        await uow.commit()

    stored = await get(new_uow, queued.id)
    assert (first, again) == (True, False)
    assert stored.status is Status.SENT
    assert stored.sent_at == NOW + MINUTE
    assert stored.claim is None
    assert stored.last_error is None
    assert stored.attempts == 1
    assert await claim(new_uow, "later", now=NOW + DAY) == []


async def test_mark_failed_with_a_retry_time_keeps_it_pending_until_then_with_the_error(
    new_uow: UowFactory,
) -> None:
    queued = message()
    await add(new_uow, queued)
    await claim(new_uow, "relay")

    async with new_uow() as uow:
        settled = await outbox(uow).mark_failed(
            queued.id, "relay", "smtp host:25: 451 try again later", NOW + 10 * MINUTE
        )
        await uow.commit()

    stored = await get(new_uow, queued.id)
    assert settled is True
    assert stored.status is Status.PENDING
    assert stored.claim is None
    assert stored.attempts == 1
    assert stored.last_error == "smtp host:25: 451 try again later"
    assert stored.next_attempt_at == NOW + 10 * MINUTE
    assert await claim(new_uow, "early", now=NOW + 9 * MINUTE) == []
    (again,) = await claim(new_uow, "on-time", now=NOW + 10 * MINUTE)
    assert again.attempts == 2
    assert again.last_error == "smtp host:25: 451 try again later"


async def test_mark_failed_without_a_retry_time_makes_it_dead_and_truncates_the_error(
    new_uow: UowFactory,
) -> None:
    queued = message()
    await add(new_uow, queued)
    await claim(new_uow, "relay")

    async with new_uow() as uow:
        settled = await outbox(uow).mark_failed(queued.id, "relay", "x" * 2000, None)
        await uow.commit()

    stored = await get(new_uow, queued.id)
    assert settled is True
    assert stored.status is Status.DEAD
    assert stored.claim is None
    assert stored.last_error == "x" * ERROR_MAX_LENGTH
    assert await claim(new_uow, "later", now=NOW + 365 * DAY) == []


async def _dead(new_uow: UowFactory, recipient: str) -> OutboxMessage:
    queued = message(recipient)
    await add(new_uow, queued)
    async with new_uow() as uow:
        (claimed,) = await outbox(uow).claim(NOW, lease_until=LEASE, claim="c", limit=1)
        assert await outbox(uow).mark_failed(claimed.id, "c", "550 gone", None)
        await uow.commit()
    return queued


async def test_retry_puts_the_named_dead_messages_back_due_now_with_fresh_attempts(
    new_uow: UowFactory,
) -> None:
    first, second = await _dead(new_uow, "one@example.com"), await _dead(new_uow, "two@example.com")
    pending = message("pending@example.com", due_in=DAY)
    await add(new_uow, pending)
    later = NOW + DAY

    async with new_uow() as uow:
        # A pending message and an unknown id are no dead messages: not counted.
        revived = await outbox(uow).retry([first.id, first.id, pending.id, new_id()], later)
        await uow.commit()

    assert revived == 1
    stored = await get(new_uow, first.id)
    assert stored.status is Status.PENDING
    assert stored.attempts == 0
    assert stored.last_error is None
    assert stored.claim is None
    assert stored.next_attempt_at == later
    assert (await get(new_uow, second.id)).status is Status.DEAD
    untouched = await get(new_uow, pending.id)
    assert (untouched.attempts, untouched.next_attempt_at) == (0, NOW + DAY)
    assert set(ids(await claim(new_uow, "relay", now=later))) == {first.id, pending.id}


async def test_retry_without_ids_puts_every_dead_message_back(new_uow: UowFactory) -> None:
    dead = [await _dead(new_uow, f"d{n}@example.com") for n in range(3)]
    sent = message("sent@example.com", status=Status.SENT, sent_at=NOW)
    await add(new_uow, sent)

    async with new_uow() as uow:
        revived = await outbox(uow).retry(None, NOW + DAY)
        await uow.commit()
    async with new_uow() as uow:
        again = await outbox(uow).retry(None, NOW + DAY)
        await uow.commit()

    assert (revived, again) == (3, 0)
    for queued in dead:
        assert (await get(new_uow, queued.id)).status is Status.PENDING
    assert (await get(new_uow, sent.id)).status is Status.SENT


async def test_delete_sent_deletes_only_messages_sent_before_the_cutoff_up_to_the_limit(
    new_uow: UowFactory,
) -> None:
    old = [message(f"old{n}@example.com", status=Status.SENT, sent_at=NOW - DAY) for n in range(3)]
    recent = message("recent@example.com", status=Status.SENT, sent_at=NOW)
    dead = message("dead@example.com", status=Status.DEAD, created_at=-10 * DAY)
    pending = message("pending@example.com", created_at=-10 * DAY)
    await add(new_uow, *old, recent, dead, pending)

    async with new_uow() as uow:
        first = await outbox(uow).delete_sent(NOW, 2)
        second = await outbox(uow).delete_sent(NOW, 2)
        third = await outbox(uow).delete_sent(NOW, 2)
        await uow.commit()

    assert (first, second, third) == (2, 1, 0)
    async with new_uow() as uow:
        left = await outbox(uow).recent(None, 100)
    assert set(ids(left)) == {recent.id, dead.id, pending.id}


async def test_stats_count_pending_and_dead_messages_and_name_the_oldest_pending(
    new_uow: UowFactory,
) -> None:
    async with new_uow() as uow:
        empty = await outbox(uow).stats()
    assert (empty.pending, empty.dead, empty.oldest_pending_at) == (0, 0, None)

    await add(
        new_uow,
        message("new@example.com", created_at=MINUTE),
        message("old@example.com", created_at=-DAY, due_in=DAY),  # waiting, not due
        message("older-but-sent@example.com", created_at=-2 * DAY, status=Status.SENT),
        message("oldest-but-dead@example.com", created_at=-3 * DAY, status=Status.DEAD),
        message("dead@example.com", status=Status.DEAD),
    )
    async with new_uow() as uow:
        stats = await outbox(uow).stats()

    assert stats.pending == 2
    assert stats.dead == 2
    assert stats.oldest_pending_at == NOW - DAY


async def test_recent_lists_the_newest_first_of_one_status_or_all_up_to_the_limit(
    new_uow: UowFactory,
) -> None:
    messages = [
        message("p0@example.com", created_at=0 * MINUTE),
        message("d1@example.com", created_at=1 * MINUTE, status=Status.DEAD),
        message("s2@example.com", created_at=2 * MINUTE, status=Status.SENT, sent_at=NOW),
        message("d3@example.com", created_at=3 * MINUTE, status=Status.DEAD),
        message("p4@example.com", created_at=4 * MINUTE),
    ]
    await add(new_uow, *messages)
    p0, d1, s2, d3, p4 = ids(messages)

    async with new_uow() as uow:
        repo = outbox(uow)
        everything = ids(await repo.recent(None, 100))
        newest_two = ids(await repo.recent(None, 2))
        dead = ids(await repo.recent(Status.DEAD, 100))
        pending = ids(await repo.recent(Status.PENDING, 1))
        sent = await repo.recent(Status.SENT, 100)

    assert everything == [p4, d3, s2, d1, p0]
    assert newest_two == [p4, d3]
    assert dead == [d3, d1]
    assert pending == [p4]
    assert ids(sent) == [s2]
    assert sent[0].status is Status.SENT
