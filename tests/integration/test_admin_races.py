"""Two superusers removing each other's access at once, and the audit trail's
transaction, on real databases.

The races run on PostgreSQL (SQLite has one writer): two "replicas" (each a Database
with its own pool, as two processes would have) run the use cases concurrently, many
rounds with fresh pairs. In half of the runs the two transactions are made to meet
right before their guarded write, each having read the other as a superuser, so the
database alone settles who wins.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar, cast

import pytest
from sqlalchemy import func, select

from adapters.audit_repository import audit_events
from adapters.clock import SystemClock
from adapters.database import Database
from adapters.orm import sessions, users
from adapters.unit_of_work import unit_of_work
from application.accounts import end_all_sessions
from application.admin import DeleteUser, SetActive, UpdateUser, UserChanges
from application.audit import record
from domain.audit import Action, Actor, ActorType, acting_as
from domain.errors import LastSuperuser
from domain.model import User
from domain.ports import (
    RefreshTokenRepository,
    SessionRepository,
    UnitOfWork,
    UowFactory,
    UserRepository,
)
from tests.conftest import empty_tables
from tests.integration.builders import NOW, add_session, add_user

R = TypeVar("R")
ROUNDS = 20
# Generous: only there so that a broken guard (a deadlock, a lost wake-up) fails
# instead of hanging.
ROUND_TIMEOUT = 60
GUARDED_WRITES = ("set_active", "set_superuser", "delete")
ACCESS_ACTIONS = {
    Action.DEACTIVATED.value,
    Action.SUPERUSER_REVOKED.value,
    Action.DELETED.value,
}


class _MeetingUsers:
    """A user repository whose guarded writes first wait for the other contender."""

    def __init__(self, inner: UserRepository, barrier: asyncio.Barrier) -> None:
        self._inner = inner
        self._barrier = barrier

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._inner, name)
        if name not in GUARDED_WRITES:
            return found

        async def after_meeting(*args: Any, **kwargs: Any) -> Any:
            await self._barrier.wait()
            return await found(*args, **kwargs)

        return after_meeting


class MeetingUnitOfWork(UnitOfWork):
    """The real unit of work, but the two contenders of a round read first and then
    take the superusers' locks together."""

    def __init__(self, inner: UnitOfWork, barrier: asyncio.Barrier) -> None:
        self._inner = inner
        self._barrier = barrier

    def repository(self, port: type[R]) -> R:
        return self._inner.repository(port)

    async def __aenter__(self) -> MeetingUnitOfWork:
        await self._inner.__aenter__()
        self.users = cast(
            UserRepository, _MeetingUsers(self._inner.repository(UserRepository), self._barrier)
        )
        self.sessions = self._inner.repository(SessionRepository)
        self.refresh_tokens = self._inner.repository(RefreshTokenRepository)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._inner.__aexit__(exc_type, exc, tb)

    async def commit(self) -> None:
        await self._inner.commit()

    async def rollback(self) -> None:
        await self._inner.rollback()


@dataclass
class Replica:
    """The use cases of one process, on its own pool."""

    database: Database
    barrier: asyncio.Barrier | None = None

    def uow(self) -> UnitOfWork:
        inner = unit_of_work(self.database)
        return inner if self.barrier is None else MeetingUnitOfWork(inner, self.barrier)

    def factory(self) -> UowFactory:
        return self.uow


Operation = Callable[[Replica, int, int], Awaitable[object]]


async def demote(replica: Replica, target: int, actor: int) -> object:
    changes = UserChanges(is_superuser=False)
    return await UpdateUser(replica.factory(), SystemClock())(target, changes, acting_user=actor)


async def deactivate(replica: Replica, target: int, actor: int) -> object:
    changes = UserChanges(is_active=False)
    return await UpdateUser(replica.factory(), SystemClock())(target, changes, acting_user=actor)


async def deactivate_as_operator(replica: Replica, target: int, actor: int) -> object:
    """``app users deactivate``: no acting user at all."""
    return await SetActive(replica.factory(), SystemClock())(target, active=False)


async def delete(replica: Replica, target: int, actor: int) -> object:
    await DeleteUser(replica.factory(), SystemClock())(target, acting_user=actor)
    return None


OPERATIONS: dict[str, tuple[Operation, Operation]] = {
    "demote vs demote": (demote, demote),
    "deactivate vs deactivate": (deactivate, deactivate),
    "delete vs delete": (delete, delete),
    "operator deactivations": (deactivate_as_operator, deactivate_as_operator),
    "demote vs deactivate": (demote, deactivate),
    "deactivate vs delete": (deactivate, delete),
    "demote vs delete": (demote, delete),
}


@pytest.fixture
async def replicas(pg_database: Database) -> AsyncIterator[tuple[Database, Database]]:
    url = pg_database.url.render_as_string(hide_password=False)
    first, second = Database(url), Database(url)
    try:
        yield first, second
    finally:
        await first.dispose()
        await second.dispose()


@dataclass
class Stored:
    is_active: bool
    is_superuser: bool
    token_version: int


async def stored_users(database: Database) -> dict[int, Stored]:
    query = select(users.c.id, users.c.is_active, users.c.is_superuser, users.c.token_version)
    async with database.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {row.id: Stored(row.is_active, row.is_superuser, row.token_version) for row in rows}


async def revoked_sessions(database: Database, user_id: int) -> list[bool]:
    query = select(sessions.c.revoked_at).where(sessions.c.user_id == user_id)
    async with database.engine.connect() as conn:
        return [revoked is not None for revoked in (await conn.scalars(query)).all()]


async def access_events(database: Database) -> list[tuple[str, int | None]]:
    query = select(audit_events.c.action, audit_events.c.target_user_id).where(
        audit_events.c.action.in_(ACCESS_ACTIONS)
    )
    async with database.engine.connect() as conn:
        return [(row.action, row.target_user_id) for row in (await conn.execute(query)).all()]


async def two_superusers(database: Database, round_number: int) -> tuple[User, User]:
    await empty_tables(database)
    pair = []
    for name in ("a", "b"):
        user = await add_user(database, f"{name}{round_number}", is_superuser=True)
        await add_session(database, user)
        pair.append(user)
    return pair[0], pair[1]


@pytest.mark.postgres
@pytest.mark.parametrize("meet", [True, False], ids=["meeting at the lock", "as they come"])
@pytest.mark.parametrize("operations", list(OPERATIONS.values()), ids=list(OPERATIONS))
async def test_two_superusers_removing_each_others_access_at_once_leave_exactly_one(
    pg_database: Database,
    replicas: tuple[Database, Database],
    operations: tuple[Operation, Operation],
    meet: bool,
) -> None:
    first_op, second_op = operations
    for round_number in range(ROUNDS):
        a, b = await two_superusers(pg_database, round_number)
        assert a.id is not None
        assert b.id is not None
        barrier = asyncio.Barrier(2) if meet else None
        first, second = Replica(replicas[0], barrier), Replica(replicas[1], barrier)

        outcomes = await asyncio.wait_for(
            asyncio.gather(
                first_op(first, b.id, a.id),  # a removes b
                second_op(second, a.id, b.id),  # b removes a
                return_exceptions=True,
            ),
            timeout=ROUND_TIMEOUT,
        )

        unexpected = [
            o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, LastSuperuser)
        ]
        assert unexpected == [], round_number
        refused = [isinstance(o, LastSuperuser) for o in outcomes]
        assert sorted(refused) == [False, True], (round_number, outcomes)
        winner, loser = (a, b) if not refused[0] else (b, a)
        assert winner.id is not None
        assert loser.id is not None
        after = await stored_users(pg_database)
        active_superusers = [uid for uid, s in after.items() if s.is_active and s.is_superuser]
        assert active_superusers == [winner.id], (round_number, after)
        # The refused change left nothing behind: the winner keeps their sessions and
        # tokens, and only the loser's removal is on record.
        assert after[winner.id].token_version == 0
        assert await revoked_sessions(pg_database, winner.id) == [False]
        [(action, target)] = await access_events(pg_database)
        assert target == loser.id, (round_number, action)
        if loser.id in after:
            assert after[loser.id].token_version == 1
            assert await revoked_sessions(pg_database, loser.id) == [True]


@pytest.mark.postgres
async def test_a_superuser_removed_while_a_third_one_remains_lets_both_changes_through(
    pg_database: Database, replicas: tuple[Database, Database]
) -> None:
    """The guard refuses only what would leave nobody: with a third active superuser,
    both concurrent demotions commit."""
    for round_number in range(5):
        a, b = await two_superusers(pg_database, round_number)
        third = await add_user(pg_database, f"c{round_number}", is_superuser=True)
        assert a.id is not None
        assert b.id is not None
        barrier = asyncio.Barrier(2)
        first, second = Replica(replicas[0], barrier), Replica(replicas[1], barrier)

        outcomes = await asyncio.wait_for(
            asyncio.gather(demote(first, b.id, a.id), demote(second, a.id, b.id)),
            timeout=ROUND_TIMEOUT,
        )

        assert all(isinstance(o, User) for o in outcomes), outcomes
        after = await stored_users(pg_database)
        assert [uid for uid, s in after.items() if s.is_superuser] == [third.id]


# --- an event never without its change -------------------------------------------------


async def _user_state(database: Database, user_id: int) -> tuple[bool, int]:
    query = select(users.c.is_active, users.c.token_version).where(users.c.id == user_id)
    async with database.engine.connect() as conn:
        row = (await conn.execute(query)).one()
    return row.is_active, row.token_version


async def _event_count(database: Database) -> int:
    async with database.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(audit_events)) or 0)


async def _change_and_record(uow: UnitOfWork, user_id: int) -> None:
    assert await uow.repository(UserRepository).set_active(user_id, False)
    await end_all_sessions(uow, user_id, NOW)
    await record(uow, Action.DEACTIVATED, user_id, NOW, reason="test")


@pytest.mark.parametrize("ending", ["left without commit", "rollback", "an error"])
async def test_a_rolled_back_change_leaves_neither_the_change_nor_its_event(
    database: Database, ending: str
) -> None:
    ada = await add_user(database, "ada")
    assert ada.id is not None

    failed = False
    try:
        async with unit_of_work(database) as uow:
            await _change_and_record(uow, ada.id)
            if ending == "rollback":
                await uow.rollback()
            if ending == "an error":
                raise RuntimeError("the use case failed after recording")
    except RuntimeError:
        failed = True

    assert failed is (ending == "an error")

    assert await _user_state(database, ada.id) == (True, 0)
    assert await _event_count(database) == 0


async def test_a_committed_change_keeps_both_the_change_and_its_event(
    database: Database,
) -> None:
    ada = await add_user(database, "ada")
    assert ada.id is not None

    with acting_as(Actor(ActorType.OPERATOR, name="ops")):
        async with unit_of_work(database) as uow:
            await _change_and_record(uow, ada.id)
            await uow.commit()

    assert await _user_state(database, ada.id) == (False, 1)
    async with database.engine.connect() as conn:
        [row] = (await conn.execute(select(audit_events))).mappings().all()
    assert row["action"] == "user.deactivated"
    assert row["target_user_id"] == ada.id
    assert row["actor_type"] == "operator"
    assert row["actor_id"] is None


async def test_a_refused_use_case_rolls_back_the_writes_it_made_before_refusing(
    database: Database,
) -> None:
    """``UpdateUser`` writes the details first, then meets the guard: the details and
    every event go with the refusal."""
    root = await add_user(database, "root", is_superuser=True)
    assert root.id is not None
    update = UpdateUser(lambda: unit_of_work(database), SystemClock())

    with pytest.raises(LastSuperuser):
        await update(root.id, UserChanges(full_name="Changed", is_superuser=False))

    async with database.engine.connect() as conn:
        stored = (await conn.execute(select(users).where(users.c.id == root.id))).one()
    assert (stored.full_name, stored.is_superuser) == (None, True)
    assert await _event_count(database) == 0
