"""The domain's errors. Each carries a stable ``code`` that every entrypoint shows as is."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a use case raises on purpose."""

    code = "domain_error"
    message = "The request could not be completed."
    # Seconds after which trying again may succeed, when the error says so.
    retry_after: int | None = None

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)

    @property
    def detail(self) -> str:
        return str(self)


class InvalidCredentials(DomainError):
    code = "invalid_credentials"
    message = "Incorrect username or password."


class InvalidToken(DomainError):
    code = "invalid_token"
    message = "The token is invalid, expired or revoked."


class WrongPassword(DomainError):
    code = "wrong_password"
    message = "The current password is not correct."


class EmailTaken(DomainError):
    code = "email_taken"
    message = "A user with this email already exists."


class UsernameTaken(DomainError):
    code = "username_taken"
    message = "A user with this username already exists."


class NotFound(DomainError):
    code = "not_found"
    message = "The resource was not found."


class UserNotFound(NotFound):
    message = "No such user."


class SessionNotFound(NotFound):
    message = "No such session."


class RateLimited(DomainError):
    code = "rate_limited"
    message = "Too many attempts. Try again later."

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class ServiceUnavailable(DomainError):
    """A backing service (the database) cannot be reached right now."""

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

    code = "validation_error"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class InvalidVerificationToken(DomainError):
    code = "invalid_verification_token"
    message = "The verification link is invalid, expired or already used. Ask for a new one."


class InvalidResetToken(DomainError):
    code = "invalid_reset_token"
    message = "The password reset link is invalid, expired or already used. Ask for a new one."


class AlreadyVerified(DomainError):
    code = "already_verified"
    message = "The email address is already verified."


class EmailNotVerified(DomainError):
    code = "email_not_verified"
    message = "Confirm your email address before logging in: follow the link we sent you."


class Forbidden(DomainError):
    code = "forbidden"
    message = "Only superusers may do this."


class CannotChangeOwnAccess(DomainError):
    code = "cannot_change_own_access"
    message = "You cannot deactivate, demote or delete yourself; ask another superuser."


class LastSuperuser(DomainError):
    code = "last_superuser"
    message = "This is the last active superuser: make another one first."


class UnsupportedGrantType(DomainError):
    code = "unsupported_grant_type"
    message = "The token endpoint supports the password and refresh_token grants only."


class LimitsUnavailable(ServiceUnavailable):
    """The store that counts rate limits cannot be reached: a limited request is
    refused (never let through unlimited) until it answers again."""

    message = "The service is temporarily unavailable. Try again shortly."

    def __init__(self, retry_after: int = 5, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)
