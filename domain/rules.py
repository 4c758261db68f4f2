"""The rules on what a user may be called and what a password may be (the HTTP contract: Users)."""

from __future__ import annotations

import re
import string
import unicodedata
from functools import lru_cache
from importlib import resources

from domain.errors import InvalidValue

USERNAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{3,32}")
# Deliberately loose: the HTTP layer checks the full address syntax; this keeps
# obviously broken values out of every other entrypoint too.
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
EMAIL_MAX_LENGTH = 320
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128
FULL_NAME_MAX_LENGTH = 100


def _reject_nul(field: str, value: str) -> None:
    if "\x00" in value:
        raise InvalidValue(field, "must not contain a NUL character")


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def normalize_email(email: str) -> str:
    """The stored form of an email: without surrounding blanks, its ASCII letters
    lower-cased and nothing else rewritten (``str.lower()`` would rewrite some other
    letters of a local part, which the mailbox owner may not accept: 'İ' becomes two
    code points)."""
    return email.strip().translate(_ASCII_LOWER)


def canonical(value: str) -> str:
    """The form in which two emails or usernames are compared (for uniqueness and
    lookups): NFKC-normalised and case-folded (Unicode's NFKC_Casefold as Python can do
    it), without surrounding blanks. Full-width, compatibility and case variants of one
    value share it: a full-width 'ALICE' and 'alice', 'Straße' and 'STRASSE', the
    Kelvin sign and 'k'. It is only compared, never stored in place of the value."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())
    return folded.strip()


def normalize_login(login: str) -> str:
    """What a user types to log in, a username or an email, in the form both are
    compared in (``canonical``)."""
    return canonical(login)


def normalize_username(username: str) -> str:
    """A username as typed, NFKC-normalised (like Django's ``normalize_username``): a
    full-width 'alice' becomes 'alice', which the rules then judge, and which may be
    taken."""
    return unicodedata.normalize("NFKC", username)


def validate_email(email: str) -> str:
    _reject_nul("email", email)
    value = normalize_email(email)
    if len(value) > EMAIL_MAX_LENGTH or not EMAIL_PATTERN.fullmatch(value):
        raise InvalidValue("email", "value is not a valid email address")
    return value


def validate_username(username: str) -> str:
    """The username to store: NFKC-normalised, then 3-32 characters of the allowed
    ASCII ones (so its ``canonical`` form is simply its lower-cased form)."""
    _reject_nul("username", username)
    value = normalize_username(username)
    if not USERNAME_PATTERN.fullmatch(value):
        raise InvalidValue(
            "username", "must be 3-32 characters of letters, digits, '_', '.' or '-'"
        )
    return value


def validate_full_name(full_name: str | None) -> str | None:
    if full_name is None:
        return None
    _reject_nul("full_name", full_name)
    if len(full_name) > FULL_NAME_MAX_LENGTH:
        raise InvalidValue("full_name", f"must be at most {FULL_NAME_MAX_LENGTH} characters")
    return full_name


def validate_password(password: str, field: str = "password") -> str:
    """Passwords are taken exactly as sent: never trimmed or case-folded."""
    _reject_nul(field, password)
    if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
        raise InvalidValue(
            field,
            f"must be {PASSWORD_MIN_LENGTH}-{PASSWORD_MAX_LENGTH} characters",
        )
    if password.lower() in common_passwords():
        raise InvalidValue(field, "is too common; choose a less guessable password")
    return password


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    text = resources.files("domain").joinpath("common_passwords.txt").read_text("utf-8")
    lines = (line.strip() for line in text.splitlines())
    return frozenset(line.lower() for line in lines if line and not line.startswith("#"))


# RFC 7518, 3.2: an HMAC signing key at least as long as the hash output.
HMAC_MIN_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
