"""The outbox's rules: backoff with jitter, retention, and masked addresses."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from application.outbox import RetryOutbox
from application.retention import ApplyRetention, RetentionPolicy
from domain.email_tokens import EmailToken, Purpose
from domain.errors import NotFound
from domain.mail import mask_address
from domain.outbox import OutboxMessage, RetryPolicy, Status, Template
from domain.ports import UowFactory
from tests.fakes import RELAXED, FakeClock, Store
from tests.unit.conftest import seed_user

NOW = datetime(2030, 1, 1, tzinfo=UTC)


@RELAXED
@given(attempts=st.integers(min_value=1, max_value=7), seed=st.integers())
def test_each_retry_waits_between_half_and_all_of_a_doubling_backoff(
    attempts: int, seed: int
) -> None:
    policy = RetryPolicy(max_attempts=8, base_delay=timedelta(seconds=30))
    retry_at = policy.next_attempt(attempts, NOW, random.Random(seed))

    assert retry_at is not None
    backoff = min(timedelta(seconds=30) * 2 ** (attempts - 1), policy.max_delay)
    assert backoff / 2 <= retry_at - NOW <= backoff


def test_the_backoff_stops_growing_at_its_cap_and_ends_at_the_last_attempt() -> None:
    policy = RetryPolicy(max_attempts=30, max_delay=timedelta(hours=1))
    retry_at = policy.next_attempt(29, NOW)
    assert retry_at is not None
    assert retry_at - NOW <= timedelta(hours=1)
    assert policy.next_attempt(30, NOW) is None


def test_a_masked_address_keeps_its_first_letter_and_domain() -> None:
    assert mask_address("ada@example.com") == "a***@example.com"
    assert mask_address("nonsense") == "***"


async def test_retention_deletes_old_sent_mail_and_spent_tokens_only(
    uow_factory: UowFactory, clock: FakeClock, store: Store
) -> None:
    ada = seed_user(store)
    assert ada.id is not None
    now = clock.now()
    old = OutboxMessage.queue(Template.PASSWORD_CHANGED, ada.email, now - timedelta(days=9))
    old.status, old.sent_at = Status.SENT, now - timedelta(days=8)
    recent = OutboxMessage.queue(Template.PASSWORD_CHANGED, ada.email, now - timedelta(days=1))
    recent.status, recent.sent_at = Status.SENT, now - timedelta(days=1)
    waiting = OutboxMessage.queue(Template.PASSWORD_CHANGED, ada.email, now - timedelta(days=30))
    store.outbox = {m.id: m for m in (old, recent, waiting)}
    _, live = EmailToken.issue(Purpose.VERIFY_EMAIL, ada.id, ada.email, now, timedelta(hours=1))
    _, gone = EmailToken.issue(
        Purpose.VERIFY_EMAIL, ada.id, ada.email, now - timedelta(hours=2), timedelta(hours=1)
    )
    store.email_tokens = {live.id: live, gone.id: gone}

    result = await ApplyRetention(uow_factory, clock, RetentionPolicy(), batch_size=1)()

    assert (result.sent_mail, result.email_tokens) == (1, 1)
    assert set(store.outbox) == {recent.id, waiting.id}
    assert set(store.email_tokens) == {live.id}


async def test_only_dead_messages_go_back_in_the_queue(
    uow_factory: UowFactory, clock: FakeClock, store: Store
) -> None:
    dead = OutboxMessage.queue(Template.PASSWORD_CHANGED, "a@example.com", clock.now())
    dead.status, dead.attempts = Status.DEAD, 8
    pending = OutboxMessage.queue(Template.PASSWORD_CHANGED, "b@example.com", clock.now())
    store.outbox = {dead.id: dead, pending.id: pending}
    retry = RetryOutbox(uow_factory, clock)

    with pytest.raises(NotFound, match=pending.id):
        await retry([pending.id])
    assert await retry([dead.id]) == 1
    assert (store.outbox[dead.id].status, store.outbox[dead.id].attempts) == (Status.PENDING, 0)
    assert await retry(None) == 0
