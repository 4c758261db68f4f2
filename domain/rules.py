"""The rules on what a user may be called and what a password may be (the HTTP contract: Users)."""

from __future__ import annotations

import re
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


def normalize_email(email: str) -> str:
    """Emails are stored and compared lower-cased, without surrounding blanks."""
    return email.strip().lower()


def normalize_login(login: str) -> str:
    """What a user types to log in: a username or an email, matched case-insensitively."""
    return login.strip().lower()


def validate_email(email: str) -> str:
    _reject_nul("email", email)
    value = normalize_email(email)
    if len(value) > EMAIL_MAX_LENGTH or not EMAIL_PATTERN.fullmatch(value):
        raise InvalidValue("email", "value is not a valid email address")
    return value


def validate_username(username: str) -> str:
    _reject_nul("username", username)
    if not USERNAME_PATTERN.fullmatch(username):
        raise InvalidValue(
            "username", "must be 3-32 characters of letters, digits, '_', '.' or '-'"
        )
    return username


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
