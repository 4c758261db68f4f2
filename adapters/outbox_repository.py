"""The mail outbox: its table and its repository."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)

from adapters.hot_statements import hot
from adapters.orm import UTCDateTime, metadata
from adapters.sql_repository import SqlRepository
from domain.outbox import OutboxMessage, OutboxRepository, OutboxStats, Status, Template

ERROR_MAX_LENGTH = 500

outbox = Table(
    "outbox",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("template", String(64), nullable=False),
    Column("recipient", String(320), nullable=False),
    # No foreign key: a message may be about an account that is gone by the time it
    # is sent, and the relay drops it then.
    Column("user_id", BigInteger, nullable=True),
    Column("context", Text, nullable=False),  # JSON object of strings
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("last_error", String(ERROR_MAX_LENGTH), nullable=True),
    Column("claim", String(32), nullable=True),
)
# What a relay looks for: pending messages that are due.
Index("ix_outbox_status_next_attempt_at", outbox.c.status, outbox.c.next_attempt_at)
Index("ix_outbox_created_at", outbox.c.created_at)

_PENDING = outbox.c.status == Status.PENDING.value
_INSERT = hot(insert(outbox), columns=[c.key for c in outbox.c])
# Locked rows are skipped, not waited for: relays running at once split the queue.
# (SQLite has no row locks and runs one writer at a time: the statement alone is safe.)
_DUE = (
    select(outbox.c.id)
    .where(_PENDING, outbox.c.next_attempt_at <= bindparam("now"))
    .order_by(outbox.c.next_attempt_at)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
    .cte("due")
)
_CLAIM = (
    update(outbox)
    .where(outbox.c.id == _DUE.c.id)
    .values(
        claim=bindparam("new_claim"),
        attempts=outbox.c.attempts + 1,
        next_attempt_at=bindparam("lease_until"),
    )
    .returning(*outbox.c)
)
_HELD = (outbox.c.id == bindparam("message_id"), outbox.c.claim == bindparam("held"), _PENDING)
_MARK_SENT = (
    update(outbox)
    .where(*_HELD)
    .values(status=Status.SENT.value, sent_at=bindparam("at"), claim=None, last_error=None)
)
_RETRY_LATER = (
    update(outbox)
    .where(*_HELD)
    .values(next_attempt_at=bindparam("retry_at"), claim=None, last_error=bindparam("error"))
)
_MARK_DEAD = (
    update(outbox)
    .where(*_HELD)
    .values(status=Status.DEAD.value, claim=None, last_error=bindparam("error"))
)
_GET = select(outbox).where(outbox.c.id == bindparam("message_id"))
_NEWEST = select(outbox).order_by(outbox.c.created_at.desc(), outbox.c.id.desc())
_RECENT = _NEWEST.limit(bindparam("limit"))
_RECENT_OF = _NEWEST.where(outbox.c.status == bindparam("of_status")).limit(bindparam("limit"))
_REVIVE_VALUES = {
    "status": Status.PENDING.value,
    "attempts": 0,
    "next_attempt_at": bindparam("now"),
    "last_error": None,
    "claim": None,
}
_DEAD = outbox.c.status == Status.DEAD.value
_RETRY_ALL_DEAD = update(outbox).where(_DEAD).values(_REVIVE_VALUES)
_RETRY_DEAD = (
    update(outbox).where(_DEAD, outbox.c.id == bindparam("message_id")).values(_REVIVE_VALUES)
)
_DELETE_SENT = delete(outbox).where(
    outbox.c.id.in_(
        select(outbox.c.id)
        .where(outbox.c.status == Status.SENT.value, outbox.c.sent_at < bindparam("before"))
        .limit(bindparam("limit"))
    )
)
_COUNT_PENDING = select(func.count()).select_from(outbox).where(_PENDING)
_COUNT_DEAD = select(func.count()).select_from(outbox).where(_DEAD)
_OLDEST_PENDING = select(outbox.c.created_at).where(_PENDING).order_by(outbox.c.created_at).limit(1)


def _message(row: Mapping[str, Any]) -> OutboxMessage:
    values = dict(row)
    values["template"] = Template(values["template"])
    values["status"] = Status(values["status"])
    values["context"] = json.loads(values["context"])
    return OutboxMessage(**values)


class SqlOutboxRepository(SqlRepository, OutboxRepository):
    async def add(self, message: OutboxMessage) -> None:
        values = dict(vars(message))
        values["template"] = message.template.value
        values["status"] = message.status.value
        values["context"] = json.dumps(message.context)
        await self._db.execute(_INSERT, values)

    async def claim(
        self, now: datetime, *, lease_until: datetime, claim: str, limit: int
    ) -> list[OutboxMessage]:
        params = {"now": now, "lease_until": lease_until, "new_claim": claim, "limit": limit}
        rows = await self._db.all(_CLAIM, params)
        claimed = [_message(row) for row in rows]
        return sorted(claimed, key=lambda m: (m.created_at, m.id))

    async def mark_sent(self, message_id: str, claim: str, at: datetime) -> bool:
        params = {"message_id": message_id, "held": claim, "at": at}
        return await self._db.execute(_MARK_SENT, params) == 1

    async def mark_failed(
        self, message_id: str, claim: str, error: str, retry_at: datetime | None
    ) -> bool:
        params: dict[str, Any] = {
            "message_id": message_id,
            "held": claim,
            "error": error[:ERROR_MAX_LENGTH],
        }
        if retry_at is None:
            return await self._db.execute(_MARK_DEAD, params) == 1
        return await self._db.execute(_RETRY_LATER, {**params, "retry_at": retry_at}) == 1

    async def get(self, message_id: str) -> OutboxMessage | None:
        row = await self._db.one(_GET, {"message_id": message_id})
        return _message(row) if row else None

    async def recent(self, status: Status | None, limit: int) -> list[OutboxMessage]:
        if status is None:
            rows = await self._db.all(_RECENT, {"limit": limit})
        else:
            rows = await self._db.all(_RECENT_OF, {"of_status": status.value, "limit": limit})
        return [_message(row) for row in rows]

    async def retry(self, message_ids: list[str] | None, now: datetime) -> int:
        if message_ids is None:
            return await self._db.execute(_RETRY_ALL_DEAD, {"now": now})
        revived = 0
        for message_id in dict.fromkeys(message_ids):  # an operator's list: a few ids
            params = {"now": now, "message_id": message_id}
            revived += await self._db.execute(_RETRY_DEAD, params)
        return revived

    async def delete_sent(self, before: datetime, limit: int) -> int:
        return await self._db.execute(_DELETE_SENT, {"before": before, "limit": limit})

    async def stats(self) -> OutboxStats:
        pending = int(await self._db.scalar(_COUNT_PENDING, {}) or 0)
        dead = int(await self._db.scalar(_COUNT_DEAD, {}) or 0)
        oldest = await self._db.scalar(_OLDEST_PENDING, {}) if pending else None
        return OutboxStats(pending=pending, dead=dead, oldest_pending_at=oldest)
