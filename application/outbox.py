"""The outbox relay and the operator's view of the outbox.

The relay claims a batch of due messages, then settles each one on its own: it makes
the message (a token and a link where one is needed), sends it, and marks it sent or
failed. A relay that dies between claiming and settling leaves its messages to come
due again when their lease ends: every message is sent at least once.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

from application.audit import record
from application.email import EmailPolicy
from domain.audit import Action
from domain.email_tokens import EmailToken, EmailTokenRepository, Purpose
from domain.errors import InvalidValue, LimitsUnavailable, NotFound, Raises
from domain.mail import Mail, MailNotSent, MailTemplates, MailTransport, mask_address
from domain.model import User, new_id
from domain.orgs import InvitationRepository, new_invitation_token
from domain.outbox import (
    OutboxMessage,
    OutboxRepository,
    OutboxStats,
    RetryPolicy,
    Status,
    Template,
)
from domain.ports import Clock, RateLimits, UnitOfWork, UowFactory, UserRepository
from domain.rules import validate_email

TEST_TEMPLATE = "test_message"
# The limit (``MAIL_PER_RECIPIENT_LIMIT``) on the mails one address receives.
RECIPIENT_LIMIT = "mail_recipient"


@dataclass(frozen=True)
class RelayPolicy:
    batch_size: int = 50
    # How long a claimed message is left to its relay: far longer than a send may take
    # (the SMTP timeout), so no message is claimed by a second relay while in flight.
    lease: timedelta = timedelta(minutes=5)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Messages of a batch in flight at once: a mail server's round trips overlap, and
    # each one holds a database connection only while it settles.
    concurrency: int = 8


class Outcome(StrEnum):
    SENT = "sent"
    # Nothing to send any more: the account is gone, inactive, has another address or
    # is confirmed already; or no active account has the address a reset was asked for.
    DROPPED = "dropped"
    RETRY = "retry"
    DEAD = "dead"
    # The claim had lapsed and another relay took the message over.
    LOST = "lost"
    # Not sent: the address has had as many mails as it may (MAIL_PER_RECIPIENT_LIMIT).
    CAPPED = "capped"


@dataclass(frozen=True)
class Delivery:
    """What became of one message, fit for a log line: no token, link or address."""

    message_id: str
    template: str
    recipient: str  # masked
    attempt: int
    outcome: Outcome
    error: str | None = None
    # Asked for by an address (a reset, a new verification link) rather than about an
    # account: whether it was sent tells whether the address has an account.
    by_address: bool = False


@dataclass(frozen=True)
class RelayResult:
    deliveries: list[Delivery]
    # The batch was full: more messages may be due.
    more: bool = False

    def count(self, outcome: Outcome) -> int:
        return sum(1 for d in self.deliveries if d.outcome is outcome)


@dataclass(frozen=True)
class _Prepared:
    """A message made ready to send: the mail (None: nothing to send), its outcome
    once sent, and the token in its link, if any."""

    mail: Mail | None
    outcome: Outcome
    token: EmailToken | None = None


class RelayOutbox:
    """Deliver the messages that are due, one batch; what became of each. An address
    gets at most the per-recipient limit of mails; those past it are capped (settled,
    not sent)."""

    raises: Raises = ()

    def __init__(
        self,
        uow: UowFactory,
        transport: MailTransport,
        templates: MailTemplates,
        clock: Clock,
        email_policy: EmailPolicy,
        relay_policy: RelayPolicy,
        rate_limits: RateLimits,
    ) -> None:
        self._uow = uow
        self._transport = transport
        self._templates = templates
        self._clock = clock
        self._email = email_policy
        self._relay = relay_policy
        self._limits = rate_limits

    async def __call__(self) -> RelayResult:
        claim = new_id()
        async with self._uow() as uow:
            now = self._clock.now()
            claimed = await uow.repository(OutboxRepository).claim(
                now,
                lease_until=now + self._relay.lease,
                claim=claim,
                limit=self._relay.batch_size,
            )
            await uow.commit()
        slots = asyncio.Semaphore(self._relay.concurrency)

        async def deliver(message: OutboxMessage) -> Delivery:
            async with slots:
                return await self._deliver(message, claim)

        # Every delivery runs to its end before a failure (the database gone) is raised:
        # none is left running unseen.
        outcomes = await asyncio.gather(
            *(deliver(message) for message in claimed), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        deliveries = [outcome for outcome in outcomes if isinstance(outcome, Delivery)]
        return RelayResult(deliveries, more=len(claimed) == self._relay.batch_size)

    async def _deliver(self, message: OutboxMessage, claim: str) -> Delivery:
        error = None
        prepared = _Prepared(None, Outcome.DROPPED)
        try:
            prepared = await self._prepare(message)
            if prepared.mail is not None:
                await self._transport.send(prepared.mail)
        except MailNotSent as exc:
            error = exc.detail
        async with self._uow() as uow:
            outbox = uow.repository(OutboxRepository)
            now = self._clock.now()
            if error is None:
                settled = await outbox.mark_sent(message.id, claim, now)
                outcome = prepared.outcome
                if prepared.token is not None:
                    # Only now that the new link is out do the older ones stop working.
                    await uow.repository(EmailTokenRepository).supersede(prepared.token, now)
            else:
                retry_at = self._relay.retry.next_attempt(message.attempts, now)
                settled = await outbox.mark_failed(message.id, claim, error, retry_at)
                outcome = Outcome.RETRY if retry_at is not None else Outcome.DEAD
            await uow.commit()
        return Delivery(
            message_id=message.id,
            template=message.template.value,
            recipient=mask_address(message.recipient),
            attempt=message.attempts,
            outcome=outcome if settled else Outcome.LOST,
            error=error,
            by_address=message.user_id is None,
        )

    async def _prepare(self, message: OutboxMessage) -> _Prepared:
        """What to send for ``message``: a mail, or nothing (dropped or capped)."""
        if message.template is Template.VERIFY_EMAIL:
            return await self._with_token(message, Purpose.VERIFY_EMAIL)
        if message.template is Template.PASSWORD_RESET:
            return await self._with_token(message, Purpose.PASSWORD_RESET)
        if message.template is Template.ORG_INVITATION:
            return await self._with_invitation(message)
        if not await self._may_receive(message.recipient):
            return _Prepared(None, Outcome.CAPPED)
        mail = self._render(message.id, message.recipient, message.template, message.context)
        return _Prepared(mail, Outcome.SENT)

    async def _may_receive(self, address: str) -> bool:
        """Whether ``address`` may get one more mail (and count it). A limit store that
        cannot be reached holds the message back for a retry: never sent uncounted."""
        key = hashlib.sha256(address.encode()).hexdigest()[:32]
        try:
            return await self._limits.hit(RECIPIENT_LIMIT, key) is None
        except LimitsUnavailable as exc:
            raise MailNotSent("the rate limit store is unavailable") from exc

    async def _with_token(self, message: OutboxMessage, purpose: Purpose) -> _Prepared:
        # The token is made now, in a transaction of its own, and exists in the mail
        # alone. A retry makes a new one; the older links end once one is sent.
        async with self._uow() as uow:
            user = await _recipient_account(uow, message, purpose)
        if user is None:
            return _Prepared(None, Outcome.DROPPED)
        if not await self._may_receive(user.email):
            return _Prepared(None, Outcome.CAPPED)
        assert user.id is not None
        verifying = purpose is Purpose.VERIFY_EMAIL
        ttl = self._email.verification_ttl if verifying else self._email.reset_ttl
        value, stored = EmailToken.issue(purpose, user.id, user.email, self._clock.now(), ttl)
        async with self._uow() as uow:
            await uow.repository(EmailTokenRepository).issue(stored)
            await uow.commit()
        context: dict[str, object] = {
            "username": user.username,
            "link": self._email.link(purpose, value),
        }
        if verifying:
            context["expires_hours"] = int(ttl.total_seconds() // 3600)
        else:
            context["expires_minutes"] = int(ttl.total_seconds() // 60)
        mail = self._render(message.id, user.email, message.template, context)
        return _Prepared(mail, Outcome.SENT, stored)

    async def _with_invitation(self, message: OutboxMessage) -> _Prepared:
        # As for mailed tokens: made now, in the mail alone; a new one replaces the
        # last, and an invitation revoked or replaced meanwhile sends nothing.
        if not await self._may_receive(message.recipient):
            return _Prepared(None, Outcome.CAPPED)
        token, hashed = new_invitation_token()
        async with self._uow() as uow:
            pending = await uow.repository(InvitationRepository).set_token(
                message.context["invitation_id"], hashed, self._clock.now()
            )
            await uow.commit()
        if not pending:
            return _Prepared(None, Outcome.DROPPED)
        ttl = self._email.invitation_ttl
        context = {
            **message.context,
            "link": self._email.invitation_link(token),
            "expires_days": max(1, ttl.days),
        }
        mail = self._render(message.id, message.recipient, message.template, context)
        return _Prepared(mail, Outcome.SENT)

    def _render(
        self, message_id: str, to: str, template: str, context: Mapping[str, object]
    ) -> Mail:
        return render(self._templates, message_id, to, template, context)


def render(
    templates: MailTemplates,
    message_id: str,
    to: str,
    template: str,
    context: Mapping[str, object],
) -> Mail:
    """The mail ``template`` makes; ``MailNotSent`` when the template cannot render."""
    try:
        rendered = templates.render(template, context)
    except Exception as exc:
        # An operator's template override may be broken: retried, then dead, and said
        # so in the outbox, rather than stopping the relay.
        raise MailNotSent(f"template {template!r}: {type(exc).__name__}: {exc}") from exc
    return Mail.of(message_id, to, rendered)


async def _recipient_account(
    uow: UnitOfWork, message: OutboxMessage, purpose: Purpose
) -> User | None:
    """The account a token mail is for, if it should still get one."""
    if message.user_id is not None:
        user = await uow.repository(UserRepository).get(message.user_id)
    else:  # a reset asked for by address
        user = await uow.repository(UserRepository).get_by_email(message.recipient)
    if user is None or not user.is_active:
        return None
    if purpose is Purpose.VERIFY_EMAIL and (user.is_verified or user.email != message.recipient):
        return None
    return user


class ListOutbox:
    """The newest messages of the outbox, of one status if given, newest first."""

    raises: Raises = ()

    def __init__(self, reader: UowFactory) -> None:
        self._reader = reader

    async def __call__(self, status: Status | None = None, limit: int = 50) -> list[OutboxMessage]:
        async with self._reader() as uow:
            return await uow.repository(OutboxRepository).recent(status, limit)


class RetryOutbox:
    """Put dead messages back in the queue, due now with a fresh set of attempts: the
    ones named (each must be dead), or every dead one."""

    raises: Raises = (NotFound,)

    def __init__(self, uow: UowFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, message_ids: list[str] | None = None) -> int:
        async with self._uow() as uow:
            outbox = uow.repository(OutboxRepository)
            if message_ids is not None:
                for message_id in message_ids:
                    found = await outbox.get(message_id)
                    if found is None or found.status is not Status.DEAD:
                        raise NotFound(f"No dead message with id {message_id!r}.")
            now = self._clock.now()
            revived = await outbox.retry(message_ids, now)
            if revived:
                ids = "all dead" if message_ids is None else sorted(message_ids)
                await record(uow, Action.OUTBOX_RETRIED, None, now, messages=ids, count=revived)
            await uow.commit()
        return revived


class OutboxState:
    """How many messages wait, how many are dead, and the age of the oldest waiting."""

    raises: Raises = ()

    def __init__(self, reader: UowFactory) -> None:
        self._reader = reader

    async def __call__(self) -> OutboxStats:
        async with self._reader() as uow:
            return await uow.repository(OutboxRepository).stats()


class SendTestMail:
    """Send one test message through the configured transport at once, outside the
    outbox, so an operator sees whether mail works: ``MailNotSent`` says why not."""

    raises: Raises = (InvalidValue, MailNotSent)

    def __init__(self, transport: MailTransport, templates: MailTemplates) -> None:
        self._transport = transport
        self._templates = templates

    async def __call__(self, to: str) -> str:
        address = validate_email(to)
        message_id = new_id()
        mail = render(self._templates, message_id, address, TEST_TEMPLATE, {})
        await self._transport.send(mail)
        return message_id
