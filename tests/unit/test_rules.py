"""What a user may be called and what a password may be (the HTTP contract, Users: Validation)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidValue
from domain.rules import (
    canonical,
    common_passwords,
    normalize_email,
    normalize_login,
    normalize_username,
    validate_email,
    validate_full_name,
    validate_password,
    validate_username,
)
from tests.fakes import RELAXED

USERNAME_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
KELVIN = "\u212a"  # the Kelvin sign, NFKC-equivalent to a 'K'


def full_width(text: str) -> str:
    """``text`` with each printable ASCII character in its full-width form."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def assert_invalid(field: str, call: Callable[..., object], *args: str) -> InvalidValue:
    with pytest.raises(InvalidValue) as caught:
        call(*args)
    assert caught.value.field == field
    assert caught.value.code == "validation_error"
    return caught.value


# --- email ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_email", "stored"),
    [
        ("ada@example.com", "ada@example.com"),
        ("Ada.Lovelace@Example.COM", "ada.lovelace@example.com"),
        ("  ada@example.com\t", "ada@example.com"),
        ("a+tag@sub.example.org", "a+tag@sub.example.org"),
    ],
)
def test_email_is_stored_lower_cased_and_trimmed(given_email: str, stored: str) -> None:
    assert validate_email(given_email) == stored


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "ada",
        "ada@",
        "@example.com",
        "ada@example",
        "ada@@example.com",
        "ada lovelace@example.com",
        "ada@exa mple.com",
        "a@b@example.com",
    ],
)
def test_malformed_email_is_refused(bad: str) -> None:
    assert_invalid("email", validate_email, bad)


def test_email_with_nul_is_refused() -> None:
    assert_invalid("email", validate_email, "ada\x00@example.com")


def test_email_longer_than_320_characters_is_refused() -> None:
    local = "a" * 64
    domain = "b" * (320 - len(local) - len("@.com")) + ".com"
    assert validate_email(f"{local}@{domain}") == f"{local}@{domain}"
    assert_invalid("email", validate_email, f"{local}@b{domain}")


@RELAXED
@given(st.text())
def test_email_normalisation_is_idempotent(email: str) -> None:
    once = normalize_email(email)
    assert normalize_email(once) == once


@RELAXED
@given(st.text())
def test_login_normalisation_is_idempotent(login: str) -> None:
    once = normalize_login(login)
    assert normalize_login(once) == once


@RELAXED
@given(st.emails())
def test_a_validated_email_validates_to_itself(email: str) -> None:
    stored = validate_email(email)
    assert validate_email(stored) == stored
    assert stored == stored.lower()


def test_login_normalisation_ignores_case_and_surrounding_blanks() -> None:
    assert normalize_login("  ADA@Example.com ") == "ada@example.com"
    assert normalize_login("Ada_L") == "ada_l"


@pytest.mark.parametrize(
    ("given_email", "stored"),
    [
        ("İvan@Example.com", "İvan@example.com"),  # 'İ'.lower() would be two code points
        (full_width("ALICE") + "@example.com", full_width("ALICE") + "@example.com"),
        ("Straße@Example.com", "straße@example.com"),
        (f"{KELVIN}elvin@example.com", f"{KELVIN}elvin@example.com"),
        ("ÉMILE@example.com", "Émile@example.com"),
    ],
)
def test_only_the_ascii_letters_of_a_stored_email_are_lower_cased(
    given_email: str, stored: str
) -> None:
    assert validate_email(given_email) == stored


@pytest.mark.parametrize(
    ("look_alike", "original"),
    [
        (full_width("ALICE") + "@example.com", "alice@example.com"),
        (full_width("alice@example.com"), "Alice@Example.com"),
        ("STRASSE@example.com", "straße@example.com"),  # 'ß' folds to 'ss'
        (f"{KELVIN}elvin@example.com", "kelvin@example.com"),
        ("\ufb01ona@example.com", "fiona@example.com"),  # the ligature 'fi'
        ("i\u0307van@example.com", "İvan@example.com"),  # 'İ' folds to 'i' + a dot above
        ("  alice@example.com\t", "alice@example.com"),
    ],
)
def test_look_alikes_share_one_canonical_form(look_alike: str, original: str) -> None:
    assert canonical(look_alike) == canonical(original)
    assert normalize_login(look_alike) == canonical(original)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("İvan@example.com", "ivan@example.com"),  # a dotted capital I is not an 'i'
        ("émile@example.com", "emile@example.com"),
        ("alice@example.com", "alice@example.co"),
    ],
)
def test_different_addresses_keep_different_canonical_forms(one: str, other: str) -> None:
    assert canonical(one) != canonical(other)


@RELAXED
@given(st.text())
def test_canonical_form_is_idempotent(value: str) -> None:
    once = canonical(value)
    assert canonical(once) == once


@RELAXED
@given(st.text())
def test_the_stored_email_has_the_canonical_form_of_the_typed_one(email: str) -> None:
    assert canonical(normalize_email(email)) == canonical(email)


# --- username ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ada", "Ada_Lovelace", "a.b-c_d", "x" * 32, "007"])
def test_username_of_allowed_characters_is_kept_as_typed(name: str) -> None:
    assert validate_username(name) == name


@pytest.mark.parametrize(
    "bad",
    ["", "ab", "x" * 33, "ada lovelace", "ada@home", "adä", "ada\n", "ada!", "ada/..", "名前名"],
)
def test_username_outside_the_rules_is_refused(bad: str) -> None:
    assert_invalid("username", validate_username, bad)


def test_username_with_nul_is_refused() -> None:
    assert_invalid("username", validate_username, "ada\x00x")


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        (full_width("alice"), "alice"),
        (full_width("ALICE"), "ALICE"),
        (f"{KELVIN}elvin", "Kelvin"),
        ("\ufb01ona", "fiona"),  # the ligature 'fi'
        ("ada²", "ada2"),
    ],
)
def test_username_is_nfkc_normalised_before_the_rules_judge_it(typed: str, stored: str) -> None:
    assert normalize_username(typed) == stored
    assert validate_username(typed) == stored


@pytest.mark.parametrize(
    "bad", [full_width("al"), full_width("alice") + "\u3000l", full_width("AD") + "Ä", "\u2474ada"]
)
def test_username_outside_the_rules_after_normalisation_is_refused(bad: str) -> None:
    assert_invalid("username", validate_username, bad)


@RELAXED
@given(st.text(alphabet=USERNAME_ALPHABET, min_size=3, max_size=32))
def test_the_canonical_form_of_a_username_is_its_lower_cased_form(name: str) -> None:
    """Why the database's lower(username) index compares usernames canonically."""
    assert canonical(name) == name.lower()


@RELAXED
@given(st.text(alphabet=USERNAME_ALPHABET, min_size=3, max_size=32))
def test_every_username_of_3_to_32_allowed_characters_is_accepted(name: str) -> None:
    assert validate_username(name) == name


@RELAXED
@given(st.text(alphabet=USERNAME_ALPHABET, max_size=2) | st.text(USERNAME_ALPHABET, min_size=33))
def test_every_username_of_the_wrong_length_is_refused(name: str) -> None:
    assert_invalid("username", validate_username, name)


# --- password ------------------------------------------------------------------------


def test_password_of_8_and_128_characters_is_accepted() -> None:
    assert validate_password("x7Kq!vZ2") == "x7Kq!vZ2"
    assert validate_password("p" * 127 + "q") == "p" * 127 + "q"


@pytest.mark.parametrize("bad", ["", "x7Kq!vZ", "p" * 128 + "q"])
def test_password_shorter_than_8_or_longer_than_128_is_refused(bad: str) -> None:
    assert_invalid("password", validate_password, bad)


def test_password_length_counts_characters_not_bytes() -> None:
    assert validate_password("ééééééé€") == "ééééééé€"
    assert_invalid("password", validate_password, "€" * 129)


@pytest.mark.parametrize("pw", ["  spaced out  ", "\ttabbed secret\n", "MiXeD CaSe Pass"])
def test_password_is_never_trimmed_or_case_folded(pw: str) -> None:
    assert validate_password(pw) == pw


def test_password_with_nul_is_refused() -> None:
    assert_invalid("password", validate_password, "sekrit\x00pass")


@pytest.mark.parametrize("pw", ["password", "PASSWORD", "PassWord", "12345678", "qwertyuiop"])
def test_common_password_is_refused_whatever_its_case(pw: str) -> None:
    assert pw.lower() in common_passwords()
    error = assert_invalid("password", validate_password, pw)
    assert "common" in error.detail


def test_password_errors_can_name_another_field() -> None:
    assert_invalid("new_password", validate_password, "short", "new_password")


def test_common_password_list_is_lower_cased_and_has_no_comments() -> None:
    passwords = common_passwords()
    assert len(passwords) > 100
    assert all(p == p.lower() and not p.startswith("#") and p for p in passwords)


@RELAXED
@given(st.text(min_size=8, max_size=128).filter(lambda p: "\x00" not in p))
def test_every_uncommon_password_comes_back_exactly_as_sent(pw: str) -> None:
    if pw.lower() in common_passwords():
        return
    assert validate_password(pw) == pw


# --- full name -----------------------------------------------------------------------


@pytest.mark.parametrize("name", [None, "", "Ada Lovelace", "  Ada  ", "x" * 100, "Ådá Łøvé"])
def test_full_name_up_to_100_characters_or_none_is_kept(name: str | None) -> None:
    assert validate_full_name(name) == name


def test_full_name_over_100_characters_is_refused() -> None:
    assert_invalid("full_name", validate_full_name, "x" * 101)


def test_full_name_with_nul_is_refused() -> None:
    assert_invalid("full_name", validate_full_name, "Ada\x00")
