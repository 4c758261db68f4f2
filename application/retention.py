"""Retention: what is kept only for a while (sent mail, spent email tokens) is deleted
in bounded batches, each in a short transaction of its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from domain.audit import AuditLog
from domain.email_tokens import EmailTokenRepository
from domain.errors import Raises
from domain.outbox import OutboxRepository
from domain.ports import Clock, UnitOfWork, UowFactory

RETENTION_BATCH_SIZE = 5_000


@dataclass(frozen=True)
class RetentionPolicy:
    sent_mail: timedelta = timedelta(days=7)
    audit_events: timedelta = timedelta(days=365)


@dataclass(frozen=True)
class RetentionResult:
    sent_mail: int
    email_tokens: int
    audit_events: int = 0


class ApplyRetention:
    """Delete mail sent and audit events recorded longer ago than the policy keeps them,
    and email tokens that are used or expired (they can never work again)."""

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
        mail = await self._drain(
            lambda uow: uow.repository(OutboxRepository).delete_sent(
                now - self._retention.sent_mail, size
            )
        )
        tokens = await self._drain(
            lambda uow: uow.repository(EmailTokenRepository).delete_spent(now, size)
        )
        events = await self._drain(
            lambda uow: uow.repository(AuditLog).delete_before(
                now - self._retention.audit_events, size
            )
        )
        return RetentionResult(sent_mail=mail, email_tokens=tokens, audit_events=events)

    async def _drain(self, delete_batch: Callable[[UnitOfWork], Awaitable[int]]) -> int:
        total = 0
        while True:
            async with self._uow() as uow:
                deleted = await delete_batch(uow)
                await uow.commit()
            total += deleted
            if deleted < self._batch_size:
                return total
