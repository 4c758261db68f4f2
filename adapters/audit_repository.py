"""The audit trail: its table and its repository."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    select,
)

from adapters.orm import BigId, UTCDateTime, metadata
from adapters.sql_repository import SqlRepository
from domain.audit import Action, ActorType, AuditEvent, AuditFilter, AuditLog
from domain.model import PageRequest

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("action", String(64), nullable=False),
    Column("actor_type", String(16), nullable=False),
    Column("actor_id", BigInteger, nullable=True),
    # No foreign key: the trail outlives the accounts it speaks of.
    Column("target_user_id", BigInteger, nullable=True),
    Column("request_id", String(128), nullable=True),
    Column("ip", String(64), nullable=True),
    Column("details", Text, nullable=False),  # a JSON object
    # No foreign key either: the trail outlives the organization.
    Column("org_id", BigInteger, nullable=True),
    sqlite_autoincrement=True,
)
Index("ix_audit_events_occurred_at", audit_events.c.occurred_at)
Index("ix_audit_events_target_user_id_id", audit_events.c.target_user_id, audit_events.c.id)
Index("ix_audit_events_actor_id_id", audit_events.c.actor_id, audit_events.c.id)
Index("ix_audit_events_action_id", audit_events.c.action, audit_events.c.id)
Index("ix_audit_events_org_id_id", audit_events.c.org_id, audit_events.c.id)

_INSERT = insert(audit_events)
# `str in Action` raises TypeError before Python 3.12: look values up in a set.
ACTIONS = frozenset(action.value for action in Action)
_FIELDS = ("action", "actor_id", "target_user_id", "org_id")
_DELETE_BEFORE = delete(audit_events).where(
    audit_events.c.id.in_(
        select(audit_events.c.id)
        .where(audit_events.c.occurred_at < bindparam("before"))
        .limit(bindparam("limit"))
    )
)


@lru_cache(maxsize=16)  # one pair of statements per set of filters: bounded
def _queries(filters: tuple[str, ...]) -> tuple[Any, Any]:
    conditions = [audit_events.c[name] == bindparam(f"want_{name}") for name in filters]
    count = select(func.count()).select_from(audit_events).where(*conditions)
    page = (
        select(audit_events)
        .where(*conditions)
        .order_by(audit_events.c.id.desc())
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )
    return count, page


def _event(row: Mapping[str, Any]) -> AuditEvent:
    values = dict(row)
    values["action"] = Action(values["action"]) if values["action"] in ACTIONS else values["action"]
    values["actor_type"] = ActorType(values["actor_type"])
    values["details"] = json.loads(values["details"])
    return AuditEvent(**values)


class SqlAuditLog(SqlRepository, AuditLog):
    async def add(self, event: AuditEvent) -> None:
        values = {name: value for name, value in vars(event).items() if name != "id"}
        values["action"] = str(event.action)
        values["actor_type"] = event.actor_type.value
        values["details"] = json.dumps(event.details, sort_keys=True)
        await self._db.execute(_INSERT, values)

    async def page(self, where: AuditFilter, page: PageRequest) -> tuple[list[AuditEvent], int]:
        filters = tuple(name for name in _FIELDS if getattr(where, name) is not None)
        count, query = _queries(filters)
        params: dict[str, Any] = {f"want_{name}": getattr(where, name) for name in filters}
        total = int(await self._db.scalar(count, params) or 0)
        if page.offset >= total:
            return [], total
        rows = await self._db.all(query, {**params, "limit": page.size, "offset": page.offset})
        return [_event(row) for row in rows], total

    async def delete_before(self, before: datetime, limit: int) -> int:
        return await self._db.execute(_DELETE_BEFORE, {"before": before, "limit": limit})
