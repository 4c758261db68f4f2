"""Retention: what is kept only for a while (expired refresh tokens and sessions, sent
mail, spent email tokens, old audit events) is deleted in bounded batches, each in a
short transaction of its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from application.batches import drain
from domain.access_tokens import AccessTokenRepository
from domain.audit import AuditLog
from domain.email_tokens import EmailTokenRepository
from domain.errors import Raises
from domain.mfa import MfaTokenRepository
from domain.orgs import InvitationRepository
from domain.outbox import OutboxRepository
from domain.passkeys import ChallengeRepository
from domain.ports import Clock, RefreshTokenRepository, SessionRepository, UowFactory

RETENTION_BATCH_SIZE = 5_000
# Rows per batch: a batch of expired rows locks only rows nobody uses, and fewer, larger
# batches cost the database a quarter less than batches of 5,000.
PURGE_BATCH_SIZE = 20_000
# After each batch the purge rests this many times as long as the batch took. At 3.5 the
# database works on the purge about a fifth of the time: a backlog of a million tokens
# takes seconds longer, and the requests (logins above all) keep the cores meanwhile.
PURGE_PAUSE_FACTOR = 3.5


@dataclass(frozen=True)
class RetentionPolicy:
    sent_mail: timedelta = timedelta(days=7)
    audit_events: timedelta = timedelta(days=365)


@dataclass(frozen=True)
class RetentionResult:
    sent_mail: int
    email_tokens: int
    audit_events: int = 0
    mfa_tokens: int = 0
    access_tokens: int = 0
    invitations: int = 0


class ApplyRetention:
    """Delete mail sent and audit events recorded longer ago than the policy keeps them,
    and mailed tokens, login-step tokens, passkey challenges and personal access
    tokens and invitations that are used, expired or ended (they can never work
    again)."""

    raises: Raises = ()

    def __init__(
        self,
        uow: UowFactory,
        clock: Clock,
        retention: RetentionPolicy,
        batch_size: int = RETENTION_BATCH_SIZE,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._retention = retention
        self._batch_size = batch_size

    async def __call__(self) -> RetentionResult:
        now = self._clock.now()
        size = self._batch_size
        mail = await drain(
            self._uow,
            lambda uow: uow.repository(OutboxRepository).delete_sent(
                now - self._retention.sent_mail, size
            ),
            size,
        )
        tokens = await drain(
            self._uow,
            lambda uow: uow.repository(EmailTokenRepository).delete_spent(now, size),
            size,
        )
        steps = await drain(
            self._uow,
            lambda uow: uow.repository(MfaTokenRepository).delete_spent(now, size),
            size,
        )
        ceremonies = await drain(
            self._uow,
            lambda uow: uow.repository(ChallengeRepository).delete_spent(now, size),
            size,
        )
        ended = await drain(
            self._uow,
            lambda uow: uow.repository(AccessTokenRepository).delete_spent(now, size),
            size,
        )
        invitations = await drain(
            self._uow,
            lambda uow: uow.repository(InvitationRepository).delete_spent(now, size),
            size,
        )
        events = await drain(
            self._uow,
            lambda uow: uow.repository(AuditLog).delete_before(
                now - self._retention.audit_events, size
            ),
            size,
        )
        return RetentionResult(
            sent_mail=mail.rows,
            email_tokens=tokens.rows,
            audit_events=events.rows,
            mfa_tokens=steps.rows + ceremonies.rows,
            access_tokens=ended.rows,
            invitations=invitations.rows,
        )


@dataclass(frozen=True)
class PurgeResult:
    tokens: int
    sessions: int
    batches: int
    dry_run: bool


ProgressCallback = Callable[[int], None]


class PurgeTokens:
    """Delete refresh tokens past their expiry, then sessions with no token left.

    Revoked and rotated tokens are kept until they expire, so reuse is still detected.
    Rows go in batches of ``batch_size``, each in its own short transaction, so a large
    table is never locked for long and a stop loses at most the batch in flight; after
    each full batch the purge rests ``purge_pause_factor`` times the batch's duration.
    """

    raises: Raises = ()

    def __init__(
        self,
        uow: UowFactory,
        clock: Clock,
        batch_size: int = PURGE_BATCH_SIZE,
        purge_pause_factor: float = PURGE_PAUSE_FACTOR,
        *,
        pause: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self._uow = uow
        self._clock = clock
        self.batch_size = batch_size
        self.pause_factor = _rest_factor(purge_pause_factor)
        self._pause = pause
        self._monotonic = monotonic

    async def __call__(
        self,
        *,
        dry_run: bool = False,
        on_progress: ProgressCallback | None = None,
        pause_factor: float | None = None,
    ) -> PurgeResult:
        """``pause_factor`` overrides the constructor's for this run (0: no rest)."""
        rest_factor = self.pause_factor if pause_factor is None else _rest_factor(pause_factor)
        now = self._clock.now()
        if dry_run:
            async with self._uow() as uow:
                expired = await uow.repository(RefreshTokenRepository).delete_expired(
                    now, 0, dry_run=True
                )
                orphans = await uow.repository(SessionRepository).delete_orphans(
                    now, 0, dry_run=True
                )
            return PurgeResult(tokens=expired, sessions=orphans, batches=0, dry_run=True)

        async def rest(took: float) -> None:
            if rest_factor:
                await self._pause(took * rest_factor)

        # Tokens first: a session goes once its last token has.
        tokens, sessions = [
            await drain(
                self._uow,
                delete_batch,
                self.batch_size,
                on_batch=on_progress,
                rest=rest,
                monotonic=self._monotonic,
            )
            for delete_batch in (
                lambda uow: uow.repository(RefreshTokenRepository).delete_expired(
                    now, self.batch_size
                ),
                lambda uow: uow.repository(SessionRepository).delete_orphans(now, self.batch_size),
            )
        ]
        return PurgeResult(
            tokens=tokens.rows,
            sessions=sessions.rows,
            batches=tokens.batches + sessions.batches,
            dry_run=False,
        )


def _rest_factor(value: float) -> float:
    if value < 0:
        raise ValueError("the purge's pause factor must not be negative")
    return value
