"""The organization contracts (OrgRepository and InvitationRepository, domain/orgs.py):
what the fakes and the SQL adapters on SQLite and PostgreSQL alike must do."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.model import PageRequest, User
from domain.orgs import (
    Invitation,
    InvitationRepository,
    Membership,
    Org,
    OrgRepository,
    Role,
    SlugTaken,
)
from domain.ports import UnitOfWork, UserRepository
from tests.contracts.builders import NOW, UowFactory, add_user

DAY = timedelta(days=1)
FIRST = PageRequest(page=1, size=20)


def orgs(uow: UnitOfWork) -> OrgRepository:
    return uow.repository(OrgRepository)


def invitations(uow: UnitOfWork) -> InvitationRepository:
    return uow.repository(InvitationRepository)


def uid(user: User) -> int:
    assert user.id is not None
    return user.id


async def create(new_uow: UowFactory, owner: User, slug: str = "acme", limit: int = 20) -> Org:
    async with new_uow() as uow:
        org = await orgs(uow).create(Org(slug, slug.title(), NOW, uid(owner)), uid(owner), limit)
        await uow.commit()
    assert org is not None
    return org


async def join(new_uow: UowFactory, org: Org, user: User, role: Role = Role.MEMBER) -> None:
    assert org.id is not None
    async with new_uow() as uow:
        assert await orgs(uow).add_member(org.id, uid(user), role, NOW)
        await uow.commit()


async def membership(new_uow: UowFactory, slug: str, user: User) -> Membership | None:
    async with new_uow() as uow:
        return await orgs(uow).membership(slug, uid(user))


async def test_the_creator_owns_a_new_organization(new_uow: UowFactory) -> None:
    ada, bob = await add_user(new_uow, "ada"), await add_user(new_uow, "bob")
    org = await create(new_uow, ada)
    found = await membership(new_uow, "acme", ada)
    assert found is not None
    assert (found.org.slug, found.org.name, found.role) == ("acme", "Acme", Role.OWNER)
    assert found.org.id == org.id
    assert found.org.created_at == NOW
    assert await membership(new_uow, "acme", bob) is None
    assert await membership(new_uow, "nope", ada) is None
    async with new_uow() as uow:
        assert org.id is not None
        by_id = await orgs(uow).membership_by_id(org.id, uid(ada))
    assert by_id == found


async def test_a_slug_is_taken_once(new_uow: UowFactory) -> None:
    ada, bob = await add_user(new_uow, "ada"), await add_user(new_uow, "bob")
    await create(new_uow, ada)
    with pytest.raises(SlugTaken):
        await create(new_uow, bob)


async def test_a_user_creates_at_most_the_limit(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "ada")
    await create(new_uow, ada, "one", limit=2)
    await create(new_uow, ada, "two", limit=2)
    async with new_uow() as uow:
        refused = await orgs(uow).create(Org("three", "T", NOW, uid(ada)), uid(ada), 2)
    assert refused is None


async def test_a_users_organizations_by_slug_with_their_role(new_uow: UowFactory) -> None:
    ada, bob = await add_user(new_uow, "ada"), await add_user(new_uow, "bob")
    zeta = await create(new_uow, ada, "zeta")
    await create(new_uow, bob, "alpha")
    await create(new_uow, bob, "beta")
    await join(new_uow, zeta, bob, Role.ADMIN)
    async with new_uow() as uow:
        page = await orgs(uow).list_for_user(uid(bob), PageRequest(page=1, size=2))
        second = await orgs(uow).list_for_user(uid(bob), PageRequest(page=2, size=2))
    assert page.total == 3
    assert [(m.org.slug, m.role) for m in page.items] == [
        ("alpha", Role.OWNER),
        ("beta", Role.OWNER),
    ]
    assert [(m.org.slug, m.role) for m in second.items] == [("zeta", Role.ADMIN)]


async def test_members_by_user_id_with_their_names(new_uow: UowFactory) -> None:
    ada, bob, cy = [await add_user(new_uow, n) for n in ("ada", "bob", "cy")]
    org = await create(new_uow, bob)
    await join(new_uow, org, cy, Role.ADMIN)
    await join(new_uow, org, ada)
    assert org.id is not None
    async with new_uow() as uow:
        page = await orgs(uow).members(org.id, FIRST)
        assert not await orgs(uow).add_member(org.id, uid(ada), Role.ADMIN, NOW)
        assert await orgs(uow).role_of(org.id, uid(cy)) is Role.ADMIN
        member = await orgs(uow).member(org.id, uid(ada))
    assert [(m.user_id, m.username, m.role) for m in page.items] == [
        (uid(ada), "ada", Role.MEMBER),
        (uid(bob), "bob", Role.OWNER),
        (uid(cy), "cy", Role.ADMIN),
    ]
    assert member == page.items[0]
    assert member is not None
    assert member.joined_at == NOW


async def test_the_last_owner_is_never_demoted_nor_removed(new_uow: UowFactory) -> None:
    ada, bob = await add_user(new_uow, "ada"), await add_user(new_uow, "bob")
    org = await create(new_uow, ada)
    await join(new_uow, org, bob)
    assert org.id is not None
    async with new_uow() as uow:
        assert await orgs(uow).hold(org.id)
        assert not await orgs(uow).set_role(org.id, uid(ada), Role.ADMIN)
        assert not await orgs(uow).remove_member(org.id, uid(ada))
        assert await orgs(uow).set_role(org.id, uid(bob), Role.OWNER)
        # Another owner now: either may go.
        assert await orgs(uow).set_role(org.id, uid(ada), Role.MEMBER)
        assert not await orgs(uow).remove_member(org.id, uid(bob))
        assert await orgs(uow).remove_member(org.id, uid(ada))
        assert not await orgs(uow).remove_member(org.id, uid(ada))
        await uow.commit()
    assert await membership(new_uow, "acme", ada) is None


async def test_membership_by_email_as_uniqueness_compares_it(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "ada")
    org = await create(new_uow, ada)
    assert org.id is not None
    async with new_uow() as uow:
        assert await orgs(uow).is_member_by_email(org.id, "ADA@example.com")
        assert not await orgs(uow).is_member_by_email(org.id, "bob@example.com")


async def test_a_deleted_organization_takes_its_members_and_invitations(
    new_uow: UowFactory,
) -> None:
    ada = await add_user(new_uow, "ada")
    org = await create(new_uow, ada)
    assert org.id is not None
    invitation = Invitation.issue(org.id, "bob@example.com", Role.MEMBER, uid(ada), NOW, DAY)
    async with new_uow() as uow:
        await invitations(uow).replace(invitation)
        assert await orgs(uow).delete(org.id)
        assert not await orgs(uow).delete(org.id)
        assert not await orgs(uow).hold(org.id)
        await uow.commit()
    async with new_uow() as uow:
        assert await invitations(uow).get(invitation.id) is None
        assert (await orgs(uow).list_for_user(uid(ada), FIRST)).total == 0


async def test_releasing_a_user_before_deletion(new_uow: UowFactory) -> None:
    ada, bob = await add_user(new_uow, "ada"), await add_user(new_uow, "bob")
    alone = await create(new_uow, ada, "alone")
    shared = await create(new_uow, ada, "shared")
    await join(new_uow, shared, bob)
    async with new_uow() as uow:
        assert not await orgs(uow).release_user(uid(ada))  # the last owner of "shared"
    assert shared.id is not None
    async with new_uow() as uow:
        assert await orgs(uow).set_role(shared.id, uid(bob), Role.OWNER)
        await uow.commit()
    async with new_uow() as uow:
        assert await orgs(uow).release_user(uid(ada))
        assert await uow.repository(UserRepository).delete(uid(ada))
        await uow.commit()
    assert alone.id is not None
    async with new_uow() as uow:
        assert not await orgs(uow).hold(alone.id)  # it had no one else: gone
        page = await orgs(uow).members(shared.id, FIRST)
    assert [m.user_id for m in page.items] == [uid(bob)]


async def test_an_invitation_is_pending_until_redeemed_once(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "ada")
    org = await create(new_uow, ada)
    assert org.id is not None
    first = Invitation.issue(org.id, "bob@example.com", Role.MEMBER, uid(ada), NOW, DAY)
    again = Invitation.issue(org.id, "BOB@example.com", Role.ADMIN, uid(ada), NOW + DAY / 2, DAY)
    other = Invitation.issue(org.id, "cy@example.com", Role.MEMBER, uid(ada), NOW, DAY)
    async with new_uow() as uow:
        await invitations(uow).replace(first)
        await invitations(uow).replace(other)
        await invitations(uow).replace(again)  # the same address: replaces the first
        await uow.commit()
    async with new_uow() as uow:
        pending = await invitations(uow).pending(org.id, NOW + DAY / 2)
        assert await invitations(uow).get(first.id) is None
        assert not await invitations(uow).set_token(first.id, "a" * 64, NOW)
        assert await invitations(uow).set_token(again.id, "b" * 64, NOW)
        assert await invitations(uow).set_token(again.id, "c" * 64, NOW)  # a new mail's
        await uow.commit()
    assert [i.id for i in pending] == [again.id, other.id]
    assert vars(pending[0]) == vars(again)
    async with new_uow() as uow:
        assert await invitations(uow).org_of("c" * 64) == org.id
        assert await invitations(uow).org_of("f" * 64) is None
        assert await invitations(uow).redeem("b" * 64, NOW) is None  # the older link
        redeemed = await invitations(uow).redeem("c" * 64, NOW)
        assert await invitations(uow).redeem("c" * 64, NOW) is None
        await uow.commit()
    assert redeemed is not None
    assert (redeemed.id, redeemed.role, redeemed.accepted_at) == (again.id, Role.ADMIN, NOW)
    async with new_uow() as uow:
        assert [i.id for i in await invitations(uow).pending(org.id, NOW)] == [other.id]
        assert not await invitations(uow).revoke(org.id, again.id)  # accepted already
        assert await invitations(uow).revoke(org.id, other.id)
        await uow.commit()


async def test_an_expired_invitation_cannot_be_redeemed_and_is_purged(
    new_uow: UowFactory,
) -> None:
    ada = await add_user(new_uow, "ada")
    org = await create(new_uow, ada)
    assert org.id is not None
    invitation = Invitation.issue(org.id, "bob@example.com", Role.MEMBER, uid(ada), NOW, DAY)
    live = Invitation.issue(org.id, "cy@example.com", Role.MEMBER, uid(ada), NOW, 3 * DAY)
    async with new_uow() as uow:
        await invitations(uow).replace(invitation)
        await invitations(uow).replace(live)
        assert await invitations(uow).set_token(invitation.id, "d" * 64, NOW)
        await uow.commit()
    async with new_uow() as uow:
        assert await invitations(uow).redeem("d" * 64, NOW + DAY) is None
        assert await invitations(uow).delete_spent(NOW + DAY, 10) == 1
        assert await invitations(uow).delete_spent(NOW + DAY, 10) == 0
        await uow.commit()
    async with new_uow() as uow:
        assert [i.id for i in await invitations(uow).pending(org.id, NOW + DAY)] == [live.id]
