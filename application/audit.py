"""Recording and reading the audit trail."""

from __future__ import annotations

from datetime import datetime

from domain.audit import Action, AuditEvent, AuditFilter, AuditLog, current_actor
from domain.errors import Raises
from domain.model import Page, PageRequest
from domain.ports import UnitOfWork, UowFactory


async def record(
    uow: UnitOfWork,
    action: Action,
    target_user_id: int | None,
    at: datetime,
    **details: object,
) -> None:
    """Record ``action`` in ``uow``'s transaction, by whoever acts now (the
    entrypoint says who). ``details`` hold names and flags, never a secret."""
    event = AuditEvent.of(action, current_actor(), at, target_user_id, details)
    await uow.repository(AuditLog).add(event)


async def record_in(
    uow: UnitOfWork,
    org_id: int,
    action: Action,
    target_user_id: int | None,
    at: datetime,
    **details: object,
) -> None:
    """``record``, for a change made in the organization ``org_id``."""
    event = AuditEvent.of(action, current_actor(), at, target_user_id, details, org_id)
    await uow.repository(AuditLog).add(event)


class ListAuditEvents:
    """The audit events, newest first, optionally by action, actor, target user or
    organization."""

    raises: Raises = ()

    def __init__(self, reader: UowFactory) -> None:
        self._reader = reader

    async def __call__(self, where: AuditFilter, request: PageRequest) -> Page[AuditEvent]:
        async with self._reader() as uow:
            items, total = await uow.repository(AuditLog).page(where, request)
        return Page(items=items, total=total, page=request.page, size=request.size)
