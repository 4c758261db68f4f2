"""The mail outbox: messages written in the transaction of the change that causes
them, and delivered at least once by a relay, later.

A message names what to send (a template), to whom, and the few plain values the
template needs; never a token or a link: the relay makes those when it sends.
"""

from __future__ import annotations

import abc
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from domain.model import new_id


class Status(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


class Template(StrEnum):
    """The messages the use cases queue, by the name of their template."""

    VERIFY_EMAIL = "verify_email"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a template name
    EMAIL_CHANGED = "email_changed"
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a template name
    # A change to how the account is protected; ``change`` names it (domain.mfa.Change).
    SECURITY_NOTICE = "security_notice"
    # An invitation to an organization; the relay makes its link's token when it sends.
    ORG_INVITATION = "org_invitation"


@dataclass(eq=False)
class OutboxMessage:
    template: Template
    recipient: str
    created_at: datetime
    next_attempt_at: datetime
    # The account it is about: None for a reset requested by address, which the relay
    # looks up when it sends.
    user_id: int | None = None
    context: dict[str, str] = field(default_factory=dict)
    status: Status = Status.PENDING
    attempts: int = 0
    sent_at: datetime | None = None
    last_error: str | None = None
    # Set while a relay holds the message: only that relay may settle it.
    claim: str | None = None
    id: str = field(default_factory=new_id)

    @classmethod
    def queue(
        cls,
        template: Template,
        recipient: str,
        now: datetime,
        *,
        user_id: int | None = None,
        context: dict[str, str] | None = None,
    ) -> OutboxMessage:
        return cls(
            template=template,
            recipient=recipient,
            created_at=now,
            next_attempt_at=now,
            user_id=user_id,
            context=dict(context or {}),
        )


@dataclass(frozen=True)
class RetryPolicy:
    """When a failed message is tried again: exponential backoff with jitter, and dead
    after ``max_attempts``."""

    max_attempts: int = 8
    base_delay: timedelta = timedelta(seconds=30)
    max_delay: timedelta = timedelta(hours=1)

    def next_attempt(
        self, attempts: int, now: datetime, rng: random.Random | None = None
    ) -> datetime | None:
        """When to try again after ``attempts`` failed tries; None when it is dead.

        "Equal jitter": half the backoff is fixed, half random, so retries of many
        messages that failed together spread out without any of them coming back at
        once."""
        if attempts >= self.max_attempts:
            return None
        # The doubling stops well before it could overflow a timedelta.
        doublings = min(max(attempts - 1, 0), 30)
        backoff = min(self.base_delay * (1 << doublings), self.max_delay)
        jitter = (rng or random).random()
        return now + backoff / 2 + backoff / 2 * jitter


@dataclass(frozen=True)
class OutboxStats:
    pending: int
    dead: int
    oldest_pending_at: datetime | None


class OutboxRepository(abc.ABC):
    @abc.abstractmethod
    async def add(self, message: OutboxMessage) -> None:
        """Queue a message, in the caller's transaction."""

    @abc.abstractmethod
    async def claim(
        self, now: datetime, *, lease_until: datetime, claim: str, limit: int
    ) -> list[OutboxMessage]:
        """Take up to ``limit`` pending messages that are due, oldest first, for one
        relay: each gets ``claim``, one more attempt, and is not due again before
        ``lease_until`` (so a relay that dies mid-send leaves it to be retried). Of
        relays claiming at once, each message goes to exactly one (on PostgreSQL,
        ``FOR UPDATE SKIP LOCKED``: they do not wait for each other)."""

    @abc.abstractmethod
    async def mark_sent(self, message_id: str, claim: str, at: datetime) -> bool:
        """Settle a claimed message as sent; whether the claim still held."""

    @abc.abstractmethod
    async def mark_failed(
        self, message_id: str, claim: str, error: str, retry_at: datetime | None
    ) -> bool:
        """Record a failed attempt: due again at ``retry_at``, or dead when it is None.
        Whether the claim still held."""

    @abc.abstractmethod
    async def get(self, message_id: str) -> OutboxMessage | None:
        """The message with this id."""

    @abc.abstractmethod
    async def recent(self, status: Status | None, limit: int) -> list[OutboxMessage]:
        """The newest ``limit`` messages, of ``status`` if given, newest first."""

    @abc.abstractmethod
    async def retry(self, message_ids: list[str] | None, now: datetime) -> int:
        """Put dead messages back in the queue, due now with their attempts reset: the
        ones named, or every dead one when ``message_ids`` is None. How many."""

    @abc.abstractmethod
    async def delete_sent(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` messages sent before ``before``; how many."""

    @abc.abstractmethod
    async def stats(self) -> OutboxStats:
        """How many messages are pending and dead, and when the oldest pending one was
        queued."""
