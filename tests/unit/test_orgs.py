"""The organization rules, written once in domain/orgs.py: every role against every role,
and the slug's form."""

from __future__ import annotations

import pytest

from domain.errors import Forbidden, InvalidValue
from domain.orgs import (
    Membership,
    Org,
    Role,
    may_grant,
    may_manage,
    validate_org_name,
    validate_slug,
)
from tests.integration.builders import NOW

OWNER, ADMIN, MEMBER = Role.OWNER, Role.ADMIN, Role.MEMBER


@pytest.mark.parametrize(
    ("actor", "role", "allowed"),
    [
        (OWNER, OWNER, True),
        (OWNER, ADMIN, True),
        (OWNER, MEMBER, True),
        (ADMIN, OWNER, False),
        (ADMIN, ADMIN, True),
        (ADMIN, MEMBER, True),
        (MEMBER, OWNER, False),
        (MEMBER, ADMIN, False),
        (MEMBER, MEMBER, False),
    ],
)
def test_who_may_give_which_role(actor: Role, role: Role, allowed: bool) -> None:
    assert may_grant(actor, role) is allowed


@pytest.mark.parametrize(
    ("actor", "target", "allowed"),
    [
        (OWNER, OWNER, True),
        (OWNER, ADMIN, True),
        (OWNER, MEMBER, True),
        (ADMIN, OWNER, False),
        (ADMIN, ADMIN, True),
        (ADMIN, MEMBER, True),
        (MEMBER, OWNER, False),
        (MEMBER, ADMIN, False),
        (MEMBER, MEMBER, False),
    ],
)
def test_who_may_change_or_remove_whom(actor: Role, target: Role, allowed: bool) -> None:
    assert may_manage(actor, target) is allowed


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("needed", list(Role))
def test_a_membership_requires_a_rank(role: Role, needed: Role) -> None:
    membership = Membership(Org("acme", "Acme", NOW, 1, id=1), user_id=1, role=role)
    order = [MEMBER, ADMIN, OWNER]
    if order.index(role) >= order.index(needed):
        membership.require(needed)
    else:
        with pytest.raises(Forbidden):
            membership.require(needed)


@pytest.mark.parametrize("slug", ["abc", "a-b", "acme-2026", "0" * 40, "a1-b2-c3"])
def test_good_slugs(slug: str) -> None:
    assert validate_slug(slug) == slug


@pytest.mark.parametrize(
    "slug", ["ab", "-ab", "ab-", "Abc", "a_b", "a b", "a" * 41, "ab\n", "é-ab"]
)
def test_bad_slugs(slug: str) -> None:
    with pytest.raises(InvalidValue):
        validate_slug(slug)


def test_names_are_trimmed_and_bounded() -> None:
    assert validate_org_name("  Acme  ") == "Acme"
    for bad in ("", "   ", "x" * 101):
        with pytest.raises(InvalidValue):
            validate_org_name(bad)
