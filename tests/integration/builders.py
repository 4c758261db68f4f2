"""Builders for the adapter tests: a fixed "now", entities with sensible defaults,
and helpers that store them through a committed unit of work."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from adapters.database import Database
from adapters.orm import refresh_tokens, sessions, users
from adapters.unit_of_work import unit_of_work
from domain.model import RefreshToken, Session, User
from domain.ports import RefreshTokenRepository, SessionRepository, UnitOfWork, UserRepository

# The same instant as FakeClock's default, so use cases and seeds agree on "now".
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)

UowFactory = Callable[[], UnitOfWork]


def make_user(name: str = "ada", **fields: object) -> User:
    values: dict[str, object] = {
        "email": f"{name.lower()}@example.com",
        "username": name,
        "password_hash": f"hash-of-{name}",
        "created_at": NOW - 30 * DAY,
    }
    values.update(fields)
    return User(**values)  # type: ignore[arg-type]


def make_session(user: User, **fields: object) -> Session:
    assert user.id is not None
    values: dict[str, object] = {
        "user_id": user.id,
        "created_at": NOW - DAY,
        "last_used_at": NOW - DAY,
        "expires_at": NOW + 6 * DAY,
        "user_agent": "pytest",
    }
    values.update(fields)
    return Session(**values)  # type: ignore[arg-type]


def make_token(session: Session, **fields: object) -> RefreshToken:
    values: dict[str, object] = {
        "session_id": session.id,
        "user_id": session.user_id,
        "created_at": session.created_at,
        "expires_at": session.expires_at,
    }
    values.update(fields)
    return RefreshToken(**values)  # type: ignore[arg-type]


async def add_user(database: Database, name: str = "ada", **fields: object) -> User:
    async with unit_of_work(database) as uow:
        user = await uow.repository(UserRepository).add(make_user(name, **fields))
        await uow.commit()
    return user


async def add_session(database: Database, user: User, **fields: object) -> Session:
    session = make_session(user, **fields)
    async with unit_of_work(database) as uow:
        await uow.repository(SessionRepository).add(session)
        await uow.commit()
    return session


async def add_token(database: Database, session: Session, **fields: object) -> RefreshToken:
    token = make_token(session, **fields)
    async with unit_of_work(database) as uow:
        await uow.repository(RefreshTokenRepository).add(token)
        await uow.commit()
    return token


async def count_rows(database: Database) -> dict[str, int]:
    """How many rows each table holds, read outside any unit of work."""
    async with database.engine.connect() as conn:
        return {
            table.name: int(await conn.scalar(select(func.count()).select_from(table)) or 0)
            for table in (users, sessions, refresh_tokens)
        }


async def stored_token(uow: UnitOfWork, token_id: str) -> RefreshToken | None:
    """The refresh token as stored (None once it, or its session, is gone)."""
    found = await uow.repository(RefreshTokenRepository).get_with_owner(token_id)
    return found[0] if found else None
