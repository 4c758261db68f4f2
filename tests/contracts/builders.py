"""Builders for the contract tests: entities with sensible defaults, stored through the
ports alone, so that they work on the fakes and the databases alike."""

from __future__ import annotations

from collections.abc import Callable

from domain.model import RefreshToken, Session, User
from domain.ports import RefreshTokenRepository, SessionRepository, UnitOfWork, UserRepository
from tests.integration.builders import DAY, NOW, make_session, make_token, make_user

__all__ = [
    "DAY",
    "NOW",
    "UowFactory",
    "add_session",
    "add_token",
    "add_user",
    "make_session",
    "make_token",
    "make_user",
]

UowFactory = Callable[[], UnitOfWork]


async def add_user(new_uow: UowFactory, name: str = "ada", **fields: object) -> User:
    async with new_uow() as uow:
        user = await uow.repository(UserRepository).add(make_user(name, **fields))
        await uow.commit()
    return user


async def add_session(new_uow: UowFactory, user: User, **fields: object) -> Session:
    session = make_session(user, **fields)
    async with new_uow() as uow:
        await uow.repository(SessionRepository).add(session)
        await uow.commit()
    return session


async def add_token(new_uow: UowFactory, session: Session, **fields: object) -> RefreshToken:
    token = make_token(session, **fields)
    async with new_uow() as uow:
        await uow.repository(RefreshTokenRepository).add(token)
        await uow.commit()
    return token


async def stored_token(uow: UnitOfWork, token_id: str) -> RefreshToken | None:
    """The refresh token as stored (None once it, or its session, is gone)."""
    found = await uow.repository(RefreshTokenRepository).get_with_owner(token_id)
    return found[0] if found else None
