"""Organizations over HTTP (the contract: "Organizations"): the roles table over every
operation, what a non-member sees (nothing), invitations by mail end to end, the last
owner, and each organization's own audit trail."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from application.admin import UpdateUser, UserChanges
from domain.orgs import OrgRepository, Role
from tests.e2e.conftest import ME, Api, AppFactory, assert_problem
from tests.e2e.test_http_admin import make_admin
from tests.e2e.test_http_email import Mailbox, mail_app

ORGS = "/api/v1/orgs"
ACCEPT = "/api/v1/invitations/accept"
ACCEPT_PATH = "/accept-invitation"
ORG_FIELDS = {"id", "slug", "name", "created_at", "role"}
MEMBER_FIELDS = {"user_id", "username", "full_name", "role", "joined_at"}
INVITATION_FIELDS = {"id", "email", "role", "invited_by", "created_at", "expires_at"}
_slugs = itertools.count()


@dataclass
class Person:
    user: dict[str, Any]
    headers: dict[str, str]

    @property
    def id(self) -> int:
        return int(self.user["id"])

    @property
    def email(self) -> str:
        return str(self.user["email"])


async def person(api: Api, name: str, *, verified: bool = True) -> Person:
    user = await api.register(name)
    if verified:
        await api.services.get(UpdateUser)(user["id"], UserChanges(is_verified=True))
    pair = await api.login(name)
    return Person(user, {"Authorization": f"Bearer {pair['access_token']}"})


async def new_org(api: Api, owner: Person, slug: str | None = None) -> dict[str, Any]:
    slug = slug or f"org-{next(_slugs)}"
    body = {"slug": slug, "name": "Acme"}
    response = await api.client.post(ORGS, json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def add(api: Api, org: dict[str, Any], who: Person, role: str = "member") -> None:
    """Seed a membership straight through the repository (the invitation path has tests
    of its own below)."""
    async with api.container.adapters.uow() as uow:
        orgs = uow.repository(OrgRepository)
        assert await orgs.hold(org["id"])
        assert await orgs.add_member(org["id"], who.id, Role(role), datetime.now(UTC))
        await uow.commit()


@pytest.fixture
async def mail(app_factory: AppFactory) -> AsyncIterator[Mailbox]:
    async with mail_app(app_factory) as box:
        yield box


async def test_create_list_get_rename_and_delete(api: Api) -> None:
    ada = await person(api, "ada")
    created = await new_org(api, ada, "acme")
    assert set(created) == ORG_FIELDS
    assert (created["slug"], created["name"], created["role"]) == ("acme", "Acme", "owner")
    await new_org(api, ada, "a-team")

    listed = await api.client.get(ORGS, headers=ada.headers)
    assert listed.status_code == 200
    body = listed.json()
    assert [o["slug"] for o in body["items"]] == ["a-team", "acme"]
    assert (body["total"], body["page"], body["size"], body["pages"]) == (2, 1, 20, 1)

    got = await api.client.get(f"{ORGS}/acme", headers=ada.headers)
    assert got.json() == created
    renamed = await api.client.patch(
        f"{ORGS}/acme", json={"name": " Acme Inc. "}, headers=ada.headers
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Acme Inc."
    assert renamed.json()["slug"] == "acme"

    members = await api.client.get(f"{ORGS}/acme/members", headers=ada.headers)
    (member,) = members.json()["items"]
    assert set(member) == MEMBER_FIELDS
    assert (member["user_id"], member["role"]) == (ada.id, "owner")
    assert "email" not in members.text

    # A slug of no organization, whatever its form, names nothing.
    for slug in ("nope", "NOPE", "a", "x" * 64):
        missing = await api.client.get(f"{ORGS}/{slug}/members", headers=ada.headers)
        assert_problem(missing, 404, "not_found")

    gone = await api.client.delete(f"{ORGS}/acme", headers=ada.headers)
    assert gone.status_code == 204
    assert_problem(await api.client.get(f"{ORGS}/acme", headers=ada.headers), 404, "not_found")


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"slug": "ab", "name": "x"}, "slug"),
        ({"slug": "-acme", "name": "x"}, "slug"),
        ({"slug": "acme-", "name": "x"}, "slug"),
        ({"slug": "Acme", "name": "x"}, "slug"),
        ({"slug": "a" * 41, "name": "x"}, "slug"),
        ({"slug": "acme", "name": ""}, "name"),
        ({"slug": "acme", "name": "   "}, "name"),
        ({"slug": "acme", "name": "x" * 101}, "name"),
    ],
)
async def test_bad_slugs_and_names_are_422(api: Api, body: dict[str, str], where: str) -> None:
    ada = await person(api, "ada")
    problem = assert_problem(
        await api.client.post(ORGS, json=body, headers=ada.headers), 422, "validation_error"
    )
    assert problem["errors"][0]["loc"] == ["body", where]


async def test_a_slug_is_taken_once_and_a_user_creates_a_limited_number(
    app_factory: AppFactory,
) -> None:
    async with app_factory(orgs_per_user=2) as api:
        ada, bob = await person(api, "ada"), await person(api, "bob")
        await new_org(api, ada, "one")
        taken = await api.client.post(ORGS, json={"slug": "one", "name": "x"}, headers=bob.headers)
        assert_problem(taken, 409, "slug_taken")
        await new_org(api, ada, "two")
        third = await api.client.post(
            ORGS, json={"slug": "three", "name": "x"}, headers=ada.headers
        )
        assert_problem(third, 409, "too_many_orgs")
        # Membership elsewhere does not count: only what one created.
        await new_org(api, bob, "three")


# --- who may do what ---------------------------------------------------------------------

# Each operation as the actor's role does it, on a fresh organization with an owner
# ("owner"), a second owner ("owner2"), an admin ("admin"), a member ("member") and the
# member acted upon ("target"). Expected status by the actor's role.
OPERATIONS: list[tuple[str, str, str, dict[str, Any] | None, dict[str, int]]] = [
    ("read", "GET", "", None, {"member": 200, "admin": 200, "owner": 200}),
    ("list members", "GET", "/members", None, {"member": 200, "admin": 200, "owner": 200}),
    ("rename", "PATCH", "", {"name": "New"}, {"member": 403, "admin": 200, "owner": 200}),
    ("delete", "DELETE", "", None, {"member": 403, "admin": 403, "owner": 204}),
    (
        "invite a member",
        "POST",
        "/invitations",
        {"email": "new@example.com", "role": "member"},
        {"member": 403, "admin": 201, "owner": 201},
    ),
    (
        "invite an admin",
        "POST",
        "/invitations",
        {"email": "new@example.com", "role": "admin"},
        {"member": 403, "admin": 201, "owner": 201},
    ),
    (
        "invite an owner",
        "POST",
        "/invitations",
        {"email": "new@example.com", "role": "owner"},
        {"member": 403, "admin": 403, "owner": 201},
    ),
    ("list invitations", "GET", "/invitations", None, {"member": 403, "admin": 200, "owner": 200}),
    ("read the trail", "GET", "/audit-events", None, {"member": 403, "admin": 200, "owner": 200}),
    (
        "make a member admin",
        "PATCH",
        "/members/{target}",
        {"role": "admin"},
        {"member": 403, "admin": 200, "owner": 200},
    ),
    (
        "make a member owner",
        "PATCH",
        "/members/{target}",
        {"role": "owner"},
        {"member": 403, "admin": 403, "owner": 200},
    ),
    (
        "demote an admin",
        "PATCH",
        "/members/{admin}",
        {"role": "member"},
        {"member": 403, "admin": 200, "owner": 200},
    ),
    (
        "demote an owner",
        "PATCH",
        "/members/{owner2}",
        {"role": "admin"},
        {"member": 403, "admin": 403, "owner": 200},
    ),
    (
        "remove a member",
        "DELETE",
        "/members/{target}",
        None,
        {"member": 403, "admin": 204, "owner": 204},
    ),
    (
        "remove an admin",
        "DELETE",
        "/members/{admin}",
        None,
        {"member": 403, "admin": 204, "owner": 204},
    ),
    (
        "remove an owner",
        "DELETE",
        "/members/{owner2}",
        None,
        {"member": 403, "admin": 403, "owner": 204},
    ),
    ("leave", "DELETE", "/members/{self}", None, {"member": 204, "admin": 204, "owner": 204}),
]


async def test_each_role_against_each_operation(app_factory: AppFactory) -> None:
    async with app_factory(orgs_per_user=1000) as api:
        await _each_role_against_each_operation(api)


async def _each_role_against_each_operation(api: Api) -> None:
    people = {
        name: await person(api, name) for name in ("owner", "owner2", "admin", "member", "target")
    }
    outsider = await person(api, "outsider")
    roles = {
        "owner": "owner",
        "owner2": "owner",
        "admin": "admin",
        "member": "member",
        "target": "member",
    }
    failures = []
    for name, method, path, body, expected in OPERATIONS:
        for actor_role, status in expected.items():
            org = await new_org(api, people["owner"])
            for who, role in roles.items():
                if who != "owner":
                    await add(api, org, people[who], role)
            actor = people[actor_role]
            ids = {who: p.id for who, p in people.items()} | {"self": actor.id}
            url = f"{ORGS}/{org['slug']}{path.format(**ids)}"
            response = await api.client.request(method, url, json=body, headers=actor.headers)
            if response.status_code != status:
                failures.append((name, actor_role, status, response.status_code, response.text))
            if status == 403:
                assert response.json()["code"] == "forbidden"
            # A non-member learns nothing, whatever the operation.
            hidden = await api.client.request(method, url, json=body, headers=outsider.headers)
            if hidden.status_code != 404:
                failures.append((name, "outsider", 404, hidden.status_code, hidden.text))
    assert not failures, failures


async def test_an_organizations_data_never_shows_through_anothers_routes(api: Api) -> None:
    ada, bob = await person(api, "ada"), await person(api, "bob")
    mine = await new_org(api, ada, "mine")
    theirs = await new_org(api, bob, "theirs")
    # Bob's member id and invitation under Ada's organization: not found.
    invited = await api.client.post(
        f"{ORGS}/theirs/invitations",
        json={"email": "x@example.com", "role": "member"},
        headers=bob.headers,
    )
    invitation = invited.json()["id"]
    for method, url in (
        ("GET", f"{ORGS}/theirs"),
        ("GET", f"{ORGS}/theirs/members"),
        ("DELETE", f"{ORGS}/mine/members/{bob.id}"),
        ("PATCH", f"{ORGS}/mine/members/{bob.id}"),
        ("DELETE", f"{ORGS}/mine/invitations/{invitation}"),
    ):
        body = {"role": "admin"} if method == "PATCH" else None
        response = await api.client.request(method, url, json=body, headers=ada.headers)
        assert_problem(response, 404, "not_found")
    assert mine["id"] != theirs["id"]
    listed = await api.client.get(f"{ORGS}/theirs/invitations", headers=bob.headers)
    assert [i["id"] for i in listed.json()] == [invitation]


# --- the last owner ----------------------------------------------------------------------


async def test_the_last_owner_cannot_go_nor_be_demoted(api: Api) -> None:
    ada, bob = await person(api, "ada"), await person(api, "bob")
    org = await new_org(api, ada, "acme")
    await add(api, org, bob, "admin")
    leave = await api.client.delete(f"{ORGS}/acme/members/{ada.id}", headers=ada.headers)
    assert_problem(leave, 409, "last_owner")
    demote = await api.client.patch(
        f"{ORGS}/acme/members/{ada.id}", json={"role": "admin"}, headers=ada.headers
    )
    assert_problem(demote, 409, "last_owner")
    deleted = await api.client.delete(ME, headers=ada.headers)
    assert_problem(deleted, 409, "last_owner")

    promoted = await api.client.patch(
        f"{ORGS}/acme/members/{bob.id}", json={"role": "owner"}, headers=ada.headers
    )
    assert promoted.status_code == 200, promoted.text
    assert (await api.client.delete(ME, headers=ada.headers)).status_code == 204
    members = await api.client.get(f"{ORGS}/acme/members", headers=bob.headers)
    assert [(m["user_id"], m["role"]) for m in members.json()["items"]] == [(bob.id, "owner")]


async def test_an_organization_whose_only_member_is_deleted_goes_too(api: Api) -> None:
    ada = await person(api, "ada")
    await new_org(api, ada, "solo")
    assert (await api.client.delete(ME, headers=ada.headers)).status_code == 204
    bob = await person(api, "bob")
    await new_org(api, bob, "solo")  # the slug is free again


# --- invitations ------------------------------------------------------------------------


async def invite(
    api: Api, who: Person, slug: str, email: str, role: str = "member"
) -> httpx.Response:
    return await api.client.post(
        f"{ORGS}/{slug}/invitations", json={"email": email, "role": role}, headers=who.headers
    )


async def test_an_invitation_by_mail_is_accepted_once_by_its_address(mail: Mailbox) -> None:
    api = mail.api
    ada = await person(api, "ada")
    await mail.relay()  # ada's verification mail
    await new_org(api, ada, "acme")
    bob = await person(api, "bob")
    eve = await person(api, "eve")
    await mail.relay()

    response = await invite(api, ada, "acme", "BOB@example.com", "admin")
    assert response.status_code == 201, response.text
    sent = response.json()
    assert set(sent) == INVITATION_FIELDS
    # The address as registration normalises it.
    assert (sent["email"], sent["role"], sent["invited_by"]) == ("bob@example.com", "admin", ada.id)
    received = await mail.relay_one("bob@example.com")
    assert "ada invited you" in received.message["Subject"]
    assert "Acme" in received.text
    token = received.token(ACCEPT_PATH)

    wrong = await api.client.post(ACCEPT, json={"token": token}, headers=eve.headers)
    assert_problem(wrong, 403, "invitation_email_mismatch")
    accepted = await api.client.post(ACCEPT, json={"token": token}, headers=bob.headers)
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["slug"], accepted.json()["role"]) == ("acme", "admin")
    again = await api.client.post(ACCEPT, json={"token": token}, headers=bob.headers)
    assert_problem(again, 400, "invalid_invitation_token")
    listed = await api.client.get(f"{ORGS}/acme/invitations", headers=ada.headers)
    assert listed.json() == []

    member = await invite(api, ada, "acme", "bob@example.com")
    assert_problem(member, 409, "already_member")


async def test_an_unverified_address_cannot_accept(mail: Mailbox) -> None:
    api = mail.api
    ada = await person(api, "ada")
    await new_org(api, ada, "acme")
    bob = await person(api, "bob", verified=False)
    await mail.relay()
    await invite(api, ada, "acme", bob.email)
    token = (await mail.relay_one(bob.email)).token(ACCEPT_PATH)
    refused = await api.client.post(ACCEPT, json={"token": token}, headers=bob.headers)
    assert_problem(refused, 403, "email_not_verified")
    # Refused without using it up: once verified, the same link works.
    await api.services.get(UpdateUser)(bob.id, UserChanges(is_verified=True))
    accepted = await api.client.post(ACCEPT, json={"token": token}, headers=bob.headers)
    assert accepted.status_code == 200, accepted.text


async def test_a_new_invitation_replaces_the_pending_one_and_revoked_links_die(
    mail: Mailbox,
) -> None:
    api = mail.api
    ada = await person(api, "ada")
    await new_org(api, ada, "acme")
    bob = await person(api, "bob")
    await mail.relay()
    await invite(api, ada, "acme", bob.email)
    first = (await mail.relay_one(bob.email)).token(ACCEPT_PATH)
    second_id = (await invite(api, ada, "acme", bob.email, "admin")).json()["id"]
    second = (await mail.relay_one(bob.email)).token(ACCEPT_PATH)
    listed = await api.client.get(f"{ORGS}/acme/invitations", headers=ada.headers)
    assert [i["id"] for i in listed.json()] == [second_id]

    stale = await api.client.post(ACCEPT, json={"token": first}, headers=bob.headers)
    assert_problem(stale, 400, "invalid_invitation_token")
    revoked = await api.client.delete(f"{ORGS}/acme/invitations/{second_id}", headers=ada.headers)
    assert revoked.status_code == 204
    dead = await api.client.post(ACCEPT, json={"token": second}, headers=bob.headers)
    assert_problem(dead, 400, "invalid_invitation_token")
    for token in ("", "x" * 1025):
        bad = await api.client.post(ACCEPT, json={"token": token}, headers=bob.headers)
        assert bad.status_code == 422


async def test_invitations_are_limited_per_organization(app_factory: AppFactory) -> None:
    async with app_factory(rate_limit_enabled=True, rate_limit_invitations="2/day") as api:
        ada = await person(api, "ada")
        await new_org(api, ada, "acme")
        await new_org(api, ada, "other")
        for n in range(2):
            assert (await invite(api, ada, "acme", f"p{n}@example.com")).status_code == 201
        limited = await invite(api, ada, "acme", "p3@example.com")
        assert_problem(limited, 429, "rate_limited")
        assert (await invite(api, ada, "other", "p3@example.com")).status_code == 201


# --- the trail ---------------------------------------------------------------------------


async def test_each_change_is_in_the_organizations_own_trail(mail: Mailbox) -> None:
    api = mail.api
    ada = await person(api, "ada")
    org = await new_org(api, ada, "acme")
    other = await new_org(api, ada, "other")
    bob = await person(api, "bob")
    await mail.relay()
    await invite(api, ada, "acme", bob.email)
    token = (await mail.relay_one(bob.email)).token(ACCEPT_PATH)
    await api.client.post(ACCEPT, json={"token": token}, headers=bob.headers)
    await api.client.patch(
        f"{ORGS}/acme/members/{bob.id}", json={"role": "admin"}, headers=ada.headers
    )
    await api.client.patch(f"{ORGS}/acme", json={"name": "Acme 2"}, headers=ada.headers)
    await api.client.delete(f"{ORGS}/acme/members/{bob.id}", headers=bob.headers)

    trail = await api.client.get(f"{ORGS}/acme/audit-events", headers=ada.headers)
    assert trail.status_code == 200, trail.text
    events = trail.json()["items"]
    assert [e["action"] for e in events] == [
        "org.member_removed",
        "org.updated",
        "org.member_role_changed",
        "org.member_added",
        "org.invitation_accepted",
        "org.invitation_sent",
        "org.created",
    ]
    assert {e["org_id"] for e in events} == {org["id"]}
    assert token not in trail.text
    only = await api.client.get(
        f"{ORGS}/acme/audit-events", params={"action": "org.updated"}, headers=ada.headers
    )
    assert [e["action"] for e in only.json()["items"]] == ["org.updated"]

    root = await make_admin(api)
    by_org = await api.client.get(
        "/api/v1/admin/audit-events", params={"org_id": other["id"]}, headers=root.headers
    )
    assert [e["action"] for e in by_org.json()["items"]] == ["org.created"]
