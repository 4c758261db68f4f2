"""The personal access token contract (AccessTokenRepository, domain/access_tokens.py):
what the fake and the SQL adapter on SQLite and PostgreSQL alike must do."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.access_tokens import AccessToken, AccessTokenRepository
from domain.email_tokens import token_hash
from domain.errors import InvalidToken
from domain.model import User
from domain.ports import UnitOfWork, UserRepository
from domain.scopes import Scope
from tests.contracts.builders import DAY, NOW, UowFactory, add_user

MINUTE = timedelta(minutes=1)


def tokens(uow: UnitOfWork) -> AccessTokenRepository:
    return uow.repository(AccessTokenRepository)


def make_token(
    user: User, scopes: frozenset[Scope] = frozenset({Scope.PROFILE_READ}), **fields: object
) -> tuple[str, AccessToken]:
    token, stored = AccessToken.issue(user, "ci", scopes, 30, NOW)
    for name, value in fields.items():
        setattr(stored, name, value)
    return token, stored


async def add(new_uow: UowFactory, *stored: AccessToken, limit: int = 50) -> list[bool]:
    async with new_uow() as uow:
        added = [await tokens(uow).add(token, limit) for token in stored]
        await uow.commit()
    return added


async def test_a_token_is_found_with_its_owner_by_its_hash_alone(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow)
    token, stored = make_token(ada, frozenset(Scope), last_used_at=NOW + MINUTE)
    assert await add(new_uow, stored) == [True]
    async with new_uow() as uow:
        found = await tokens(uow).get_with_owner(token_hash(token))
        assert await tokens(uow).get_with_owner(token_hash(token + "x")) is None
    assert found is not None
    assert vars(found[0]) == vars(stored)
    assert vars(found[1]) == vars(ada)


async def test_the_list_shows_live_tokens_newest_first(new_uow: UowFactory) -> None:
    ada, bob = await add_user(new_uow, "ada"), await add_user(new_uow, "bob")
    _, old = make_token(ada)
    _, new = make_token(ada, created_at=NOW + MINUTE)
    _, expired = make_token(ada, expires_at=NOW + MINUTE)
    _, others = make_token(bob)
    await add(new_uow, old, new, expired, others)
    assert ada.id is not None
    async with new_uow() as uow:
        listed = await tokens(uow).list_live(ada.id, NOW + 2 * MINUTE)
    assert [t.id for t in listed] == [new.id, old.id]


async def test_ending_the_owners_sessions_ends_every_token(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow)
    token, stored = make_token(ada)
    await add(new_uow, stored)
    assert ada.id is not None
    async with new_uow() as uow:
        await uow.repository(UserRepository).revoke_tokens(ada.id)
        await uow.commit()
    async with new_uow() as uow:
        assert await tokens(uow).list_live(ada.id, NOW) == []
        found = await tokens(uow).get_with_owner(token_hash(token))
    assert found is not None
    assert not found[0].admits(found[1], NOW)


async def test_the_limit_counts_live_tokens_only(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow)
    _, first = make_token(ada)
    _, expired = make_token(ada, expires_at=NOW)
    _, ended = make_token(ada, token_version=ada.token_version - 1)
    _, second = make_token(ada)
    _, third = make_token(ada)
    assert await add(new_uow, first, expired, ended, second, third, limit=2) == [
        True,
        True,
        True,
        True,
        False,
    ]
    assert ada.id is not None
    async with new_uow() as uow:
        assert {t.id for t in await tokens(uow).list_live(ada.id, NOW)} == {first.id, second.id}


async def test_a_token_of_a_user_who_is_gone_is_refused(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow)
    assert ada.id is not None
    async with new_uow() as uow:
        assert await uow.repository(UserRepository).delete(ada.id)
        await uow.commit()
    _, stored = make_token(ada)
    with pytest.raises(InvalidToken):
        await add(new_uow, stored)


async def test_a_use_is_recorded_forward_only(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow)
    token, stored = make_token(ada)
    await add(new_uow, stored)
    async with new_uow() as uow:
        await tokens(uow).record_use(stored.id, NOW + 2 * MINUTE)
        await tokens(uow).record_use(stored.id, NOW + MINUTE)  # late, changes nothing
        await tokens(uow).record_use("0" * 32, NOW)  # no such token: nothing
        await uow.commit()
    async with new_uow() as uow:
        found = await tokens(uow).get_with_owner(token_hash(token))
    assert found is not None
    assert found[0].last_used_at == NOW + 2 * MINUTE


async def test_a_token_is_deleted_by_its_owner_only(new_uow: UowFactory) -> None:
    ada, bob = await add_user(new_uow, "ada"), await add_user(new_uow, "bob")
    token, stored = make_token(ada)
    await add(new_uow, stored)
    assert ada.id is not None
    assert bob.id is not None
    async with new_uow() as uow:
        assert await tokens(uow).delete(stored.id, bob.id) is None
        removed = await tokens(uow).delete(stored.id, ada.id)
        assert await tokens(uow).delete(stored.id, ada.id) is None
        await uow.commit()
    assert removed is not None
    assert vars(removed) == vars(stored)
    async with new_uow() as uow:
        assert await tokens(uow).get_with_owner(token_hash(token)) is None


async def test_tokens_go_with_their_owner(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow)
    token, stored = make_token(ada)
    await add(new_uow, stored)
    assert ada.id is not None
    async with new_uow() as uow:
        assert await uow.repository(UserRepository).delete(ada.id)
        await uow.commit()
    async with new_uow() as uow:
        assert await tokens(uow).get_with_owner(token_hash(token)) is None


async def test_the_purge_deletes_expired_and_ended_tokens_in_batches(
    new_uow: UowFactory,
) -> None:
    ada = await add_user(new_uow)
    _, live = make_token(ada, expires_at=NOW + DAY)
    spent = [make_token(ada, expires_at=NOW)[1] for _ in range(2)]
    spent.append(make_token(ada, token_version=ada.token_version - 1)[1])
    await add(new_uow, live, *spent)
    async with new_uow() as uow:
        assert await tokens(uow).delete_spent(NOW, 2) == 2
        assert await tokens(uow).delete_spent(NOW, 2) == 1
        assert await tokens(uow).delete_spent(NOW, 2) == 0
        await uow.commit()
    assert ada.id is not None
    async with new_uow() as uow:
        assert [t.id for t in await tokens(uow).list_live(ada.id, NOW)] == [live.id]
