"""Organizations under concurrency, on PostgreSQL (SQLite has one writer): the last
owner stays when two owners leave or demote each other at once, an invitation is
accepted once, and the number of organizations a user creates holds when creations
race.

Each two-transaction race is made real (tests/integration/test_races.py): the second
transaction is seen waiting on the first one's lock before the first commits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from adapters.database import Database
from adapters.unit_of_work import unit_of_work
from application.orgs import CreateOrg
from domain.model import PageRequest, Principal, User
from domain.orgs import (
    Invitation,
    InvitationRepository,
    Org,
    OrgRepository,
    Role,
    TooManyOrgs,
)
from domain.ports import UnitOfWork
from tests.fakes import FakeClock
from tests.integration.builders import DAY, NOW, add_user
from tests.integration.test_races import race

pytestmark = pytest.mark.postgres


def orgs(uow: UnitOfWork) -> OrgRepository:
    return uow.repository(OrgRepository)


def uid(user: User) -> int:
    assert user.id is not None
    return user.id


async def two_owners(database: Database) -> tuple[int, User, User]:
    ada, bob = await add_user(database, "ada"), await add_user(database, "bob")
    cy = await add_user(database, "cy")
    async with unit_of_work(database) as uow:
        org = await orgs(uow).create(Org("acme", "Acme", NOW, uid(ada)), uid(ada), 20)
        assert org is not None
        assert org.id is not None
        assert await orgs(uow).add_member(org.id, uid(bob), Role.OWNER, NOW)
        assert await orgs(uow).add_member(org.id, uid(cy), Role.MEMBER, NOW)
        await uow.commit()
    return org.id, ada, bob


async def owners(database: Database, org_id: int) -> list[int]:
    async with unit_of_work(database) as uow:
        page = await orgs(uow).members(org_id, PageRequest(page=1, size=20))
    return [m.user_id for m in page.items if m.role is Role.OWNER]


async def test_two_owners_leaving_at_once_leave_one(pg_database: Database) -> None:
    org_id, ada, bob = await two_owners(pg_database)

    def leave(user: User) -> Callable[[UnitOfWork], Awaitable[bool]]:
        async def write(uow: UnitOfWork) -> bool:
            assert await orgs(uow).hold(org_id)
            return await orgs(uow).remove_member(org_id, uid(user))

        return write

    outcome = await race(pg_database, leave(ada), leave(bob))

    assert outcome.second_waited
    assert (outcome.first, outcome.second) == (True, False)
    assert await owners(pg_database, org_id) == [uid(bob)]


async def test_two_owners_demoting_each_other_at_once_keep_one(pg_database: Database) -> None:
    org_id, ada, bob = await two_owners(pg_database)

    def demote(user: User) -> Callable[[UnitOfWork], Awaitable[bool]]:
        async def write(uow: UnitOfWork) -> bool:
            assert await orgs(uow).hold(org_id)
            return await orgs(uow).set_role(org_id, uid(user), Role.ADMIN)

        return write

    outcome = await race(pg_database, demote(bob), demote(ada))

    assert outcome.second_waited
    assert (outcome.first, outcome.second) == (True, False)
    assert await owners(pg_database, org_id) == [uid(ada)]


async def test_an_invitation_accepted_twice_at_once_is_accepted_once(
    pg_database: Database,
) -> None:
    org_id, ada, _ = await two_owners(pg_database)
    invitation = Invitation.issue(org_id, "dee@example.com", Role.MEMBER, uid(ada), NOW, DAY)
    async with unit_of_work(pg_database) as uow:
        await uow.repository(InvitationRepository).replace(invitation)
        assert await uow.repository(InvitationRepository).set_token(invitation.id, "e" * 64, NOW)
        await uow.commit()

    async def redeem(uow: UnitOfWork) -> str | None:
        found = await uow.repository(InvitationRepository).redeem("e" * 64, NOW)
        return found.id if found else None

    outcome = await race(pg_database, redeem, redeem)

    assert outcome.second_waited
    assert (outcome.first, outcome.second) == (invitation.id, None)


async def test_many_creations_at_once_never_pass_the_limit(pg_database: Database) -> None:
    ada = await add_user(pg_database, "ada")
    create = CreateOrg(lambda: unit_of_work(pg_database), FakeClock(NOW), per_user=3)
    principal = Principal(user=ada, session_id="s")

    results = await asyncio.gather(
        *(create(principal, f"org-{n}", "Org") for n in range(8)), return_exceptions=True
    )

    made = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, TooManyOrgs)]
    assert (len(made), len(refused)) == (3, 5), results


async def test_an_acceptance_and_a_new_invitation_of_the_address_wait_never_deadlock(
    pg_database: Database,
) -> None:
    org_id, ada, _ = await two_owners(pg_database)
    first = Invitation.issue(org_id, "dee@example.com", Role.MEMBER, uid(ada), NOW, DAY)
    async with unit_of_work(pg_database) as uow:
        await uow.repository(InvitationRepository).replace(first)
        assert await uow.repository(InvitationRepository).set_token(first.id, "f" * 64, NOW)
        await uow.commit()

    async def invite_again(uow: UnitOfWork) -> None:
        # As InviteMember: the organization, then the invitations.
        assert await orgs(uow).hold(org_id)
        again = Invitation.issue(org_id, "dee@example.com", Role.ADMIN, uid(ada), NOW, DAY)
        await uow.repository(InvitationRepository).replace(again)

    async def accept(uow: UnitOfWork) -> str | None:
        # As AcceptInvitation: the organization first too.
        invitations = uow.repository(InvitationRepository)
        found_org = await invitations.org_of("f" * 64)
        assert found_org == org_id
        assert await orgs(uow).hold(found_org)
        redeemed = await invitations.redeem("f" * 64, NOW)
        return redeemed.id if redeemed else None

    outcome = await race(pg_database, invite_again, accept)

    assert outcome.second_waited
    assert outcome.second is None  # the link it held was replaced meanwhile
