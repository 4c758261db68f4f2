"""The domain's errors. Each carries a stable ``code`` that every entrypoint shows as is,
and a ``category``: what kind of refusal it is. The category alone decides how each
entrypoint answers it (the HTTP status, the documented responses, the CLI's exit
status), so a new error names its category and nothing else needs editing::

    class NoteLimitReached(DomainError):
        category = ErrorCategory.CONFLICT
        code = "note_limit"
        message = "A user has at most 100 notes."

A subclass inherits its parent's category (``UserNotFound`` is a ``NotFound``).
``DomainError`` itself has none: an error without one is a programming error, which
``tests/unit/test_error_categories.py`` names.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, TypeAlias


class ErrorCategory(StrEnum):
    """What kind of refusal an error is, in the domain's words. (The HTTP status each
    one gets is ``entrypoints.http.problems.STATUS_BY_CATEGORY``.)"""

    # The caller did not prove who they are: a wrong login, a bad or revoked token.
    UNAUTHENTICATED = "unauthenticated"
    # The caller is known but may not do this: not a superuser, a wrong password.
    FORBIDDEN = "forbidden"
    # What was named does not exist (or is not the caller's to see).
    NOT_FOUND = "not_found"
    # The state of things forbids it: a name taken, the last superuser, a limit reached.
    CONFLICT = "conflict"
    # A value breaks a rule (an email, a password); ``field`` names the input when the
    # error has one.
    INVALID = "invalid"
    # The request cannot be honoured as it stands: an unknown, used or expired mailed
    # link, a grant type not supported, an operation the configuration does not offer.
    REJECTED = "rejected"
    # Too many attempts; ``retry_after`` says when to try again.
    THROTTLED = "throttled"
    # A backing service (the database, the limit store, the mail server) cannot serve
    # right now; ``retry_after`` says when to try again, when known.
    UNAVAILABLE = "unavailable"


class DomainError(Exception):
    """Base of every error a use case raises on purpose. A subclass sets ``category``
    (or inherits one), ``code`` and ``message``."""

    # No default: a new error must say what kind it is.
    category: ClassVar[ErrorCategory]
    code = "domain_error"
    message = "The request could not be completed."
    # Seconds after which trying again may succeed, when the error says so.
    retry_after: int | None = None

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)

    @property
    def detail(self) -> str:
        return str(self)

    def members(self) -> dict[str, object]:
        """What the error tells the client beyond its code and message (plain values:
        an entrypoint shows them as they are)."""
        return {}


class InvalidCredentials(DomainError):
    category = ErrorCategory.UNAUTHENTICATED
    code = "invalid_credentials"
    message = "Incorrect username or password."


class InvalidToken(DomainError):
    category = ErrorCategory.UNAUTHENTICATED
    code = "invalid_token"
    message = "The token is invalid, expired or revoked."


class InsufficientScope(DomainError):
    """A personal access token was used for what its scopes do not allow, or for what
    no token may do; ``scope`` names the one that would, when there is one."""

    category = ErrorCategory.FORBIDDEN
    code = "insufficient_scope"
    message = "This token's scopes do not allow this operation."

    def __init__(self, scope: str | None = None, message: str | None = None) -> None:
        if message is None and scope is None:
            message = "A personal access token cannot do this: log in to do it."
        super().__init__(message)
        self.scope = scope


class WrongPassword(DomainError):
    category = ErrorCategory.FORBIDDEN
    code = "wrong_password"
    message = "The current password is not correct."


class ReauthenticationRequired(DomainError):
    category = ErrorCategory.FORBIDDEN
    code = "reauthentication_required"
    message = (
        "This operation needs a recent authentication: "
        "confirm your password at /api/v1/auth/reauthenticate, then try again."
    )


class MfaRequired(DomainError):
    """A right password of a user who has a second factor: no session yet. The client
    sends ``mfa_token`` with one of ``methods`` to the second step."""

    category = ErrorCategory.FORBIDDEN
    code = "mfa_required"
    message = "A second factor is required: send it with the mfa_token to /api/v1/auth/login/mfa."

    def __init__(self, methods: tuple[str, ...], mfa_token: str | None = None) -> None:
        super().__init__(
            None
            if mfa_token is not None
            else "A second factor is required: send one of the methods with the password."
        )
        self.methods = methods
        self.mfa_token = mfa_token

    def members(self) -> dict[str, object]:
        found: dict[str, object] = {"methods": list(self.methods)}
        if self.mfa_token is not None:
            found["mfa_token"] = self.mfa_token
        return found


class InvalidMfaCode(DomainError):
    category = ErrorCategory.UNAUTHENTICATED
    code = "invalid_mfa_code"
    message = "The second factor is not correct."


class InvalidPasskey(DomainError):
    category = ErrorCategory.UNAUTHENTICATED
    code = "invalid_passkey"
    message = "The passkey could not be verified."


class PasskeyAlreadyRegistered(DomainError):
    category = ErrorCategory.CONFLICT
    code = "passkey_already_registered"
    message = "This passkey is registered already."


class MfaAlreadyEnabled(DomainError):
    category = ErrorCategory.CONFLICT
    code = "mfa_already_enabled"
    message = "TOTP is already on: turn it off first to set up a new secret."


class MfaNotEnabled(DomainError):
    category = ErrorCategory.CONFLICT
    code = "mfa_not_enabled"
    message = "This needs a second factor, and the account has none."


class EmailTaken(DomainError):
    category = ErrorCategory.CONFLICT
    code = "email_taken"
    message = "A user with this email already exists."


class UsernameTaken(DomainError):
    category = ErrorCategory.CONFLICT
    code = "username_taken"
    message = "A user with this username already exists."


class NotFound(DomainError):
    category = ErrorCategory.NOT_FOUND
    code = "not_found"
    message = "The resource was not found."


class UserNotFound(NotFound):
    message = "No such user."


class SessionNotFound(NotFound):
    message = "No such session."


class PasskeyNotFound(NotFound):
    message = "No such passkey."


class RateLimited(DomainError):
    category = ErrorCategory.THROTTLED
    code = "rate_limited"
    message = "Too many attempts. Try again later."

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class ServiceUnavailable(DomainError):
    """A backing service (the database) cannot be reached right now."""

    category = ErrorCategory.UNAVAILABLE
    code = "service_unavailable"
    message = "The service is temporarily unavailable. Try again shortly."


class Overloaded(ServiceUnavailable):
    """Too much slow work (password hashing) is already waiting: try again shortly."""

    message = "The service is busy. Try again shortly."

    def __init__(self, retry_after: int = 1, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class InvalidValue(DomainError):
    """A value breaks a domain rule; ``field`` names the input it came from."""

    category = ErrorCategory.INVALID
    code = "validation_error"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class InvalidVerificationToken(DomainError):
    category = ErrorCategory.REJECTED
    code = "invalid_verification_token"
    message = "The verification link is invalid, expired or already used. Ask for a new one."


class InvalidResetToken(DomainError):
    category = ErrorCategory.REJECTED
    code = "invalid_reset_token"
    message = "The password reset link is invalid, expired or already used. Ask for a new one."


class AlreadyVerified(DomainError):
    category = ErrorCategory.CONFLICT
    code = "already_verified"
    message = "The email address is already verified."


class EmailNotVerified(DomainError):
    category = ErrorCategory.FORBIDDEN
    code = "email_not_verified"
    message = "Confirm your email address before logging in: follow the link we sent you."


class Forbidden(DomainError):
    category = ErrorCategory.FORBIDDEN
    code = "forbidden"
    message = "Only superusers may do this."


class CannotChangeOwnAccess(DomainError):
    category = ErrorCategory.CONFLICT
    code = "cannot_change_own_access"
    message = "You cannot deactivate, demote or delete yourself; ask another superuser."


class LastSuperuser(DomainError):
    category = ErrorCategory.CONFLICT
    code = "last_superuser"
    message = "This is the last active superuser: make another one first."


class UnsupportedGrantType(DomainError):
    category = ErrorCategory.REJECTED
    code = "unsupported_grant_type"
    message = "The token endpoint supports the password and refresh_token grants only."


class LimitsUnavailable(ServiceUnavailable):
    """The store that counts rate limits cannot be reached: a limited request is
    refused (never let through unlimited) until it answers again."""

    message = "The service is temporarily unavailable. Try again shortly."

    def __init__(self, retry_after: int = 5, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


# What a use case declares it may raise, on purpose (``raises: Raises = (EmailTaken,)``):
# the HTTP document's error responses are built from it. ``ServiceUnavailable`` goes
# without saying: any use case may find a backing service away.
Raises: TypeAlias = tuple[type[DomainError], ...]


def category_of(error: DomainError | type[DomainError]) -> ErrorCategory | None:
    """The category of an error or error class; None for one that states none."""
    category = getattr(error, "category", None)
    return category if isinstance(category, ErrorCategory) else None
