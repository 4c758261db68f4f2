"""The audit trail: who changed what about an account, written in the transaction of
the change itself, so there is never a change without its event nor an event without
its change.

Who acts is the entrypoint's to say (``acting_as``): the API names the user, the
request and the client's address; the CLI the operator; anything else is the system.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from domain.model import PageRequest


class ActorType(StrEnum):
    USER = "user"
    OPERATOR = "operator"
    SYSTEM = "system"


class Action(StrEnum):
    REGISTERED = "user.registered"
    UPDATED = "user.updated"
    EMAIL_CHANGED = "user.email_changed"
    PASSWORD_CHANGED = "user.password_changed"  # noqa: S105 - an action's name
    PASSWORD_RESET = "user.password_reset"  # noqa: S105 - an action's name
    PASSWORD_RESET_QUEUED = "user.password_reset_queued"  # noqa: S105 - an action's name
    EMAIL_VERIFIED = "user.email_verified"
    ACTIVATED = "user.activated"
    DEACTIVATED = "user.deactivated"
    SUPERUSER_GRANTED = "user.superuser_granted"
    SUPERUSER_REVOKED = "user.superuser_revoked"
    DELETED = "user.deleted"
    SESSIONS_REVOKED = "user.sessions_revoked"
    REUSE_DETECTED = "session.reuse_detected"
    TOTP_ENABLED = "mfa.totp_enabled"
    TOTP_DISABLED = "mfa.totp_disabled"
    RECOVERY_CODES_GENERATED = "mfa.recovery_codes_generated"
    RECOVERY_CODE_USED = "mfa.recovery_code_used"
    MFA_RESET_BY_ADMIN = "mfa.reset_by_admin"
    PASSKEY_ADDED = "passkey.added"
    PASSKEY_REMOVED = "passkey.removed"
    TOKEN_CREATED = "token.created"  # noqa: S105 - an action's name
    TOKEN_REVOKED = "token.revoked"  # noqa: S105 - an action's name
    ORG_CREATED = "org.created"
    ORG_UPDATED = "org.updated"
    ORG_DELETED = "org.deleted"
    ORG_MEMBER_ADDED = "org.member_added"
    ORG_MEMBER_ROLE_CHANGED = "org.member_role_changed"
    ORG_MEMBER_REMOVED = "org.member_removed"
    ORG_INVITATION_SENT = "org.invitation_sent"
    ORG_INVITATION_REVOKED = "org.invitation_revoked"
    ORG_INVITATION_ACCEPTED = "org.invitation_accepted"
    KEY_ROTATED = "key.rotated"
    KEY_RETIRED = "key.retired"
    KEY_REVOKED = "key.revoked"
    OUTBOX_RETRIED = "outbox.retried"


@dataclass(frozen=True)
class Actor:
    """Who a change is made by: a user (``id`` None before anyone has logged in, as
    for a registration), an operator at the CLI (``name``: the OS user) or the system."""

    type: ActorType
    id: int | None = None
    name: str | None = None
    request_id: str | None = None
    ip: str | None = None
    # What the client called the request (its X-Request-ID): kept, never trusted as ours.
    client_request_id: str | None = None

    def as_user(self, user_id: int) -> Actor:
        return replace(self, type=ActorType.USER, id=user_id)


SYSTEM = Actor(ActorType.SYSTEM)
_acting: ContextVar[Actor] = ContextVar("acting", default=SYSTEM)


def current_actor() -> Actor:
    """Who the use case running now acts for (the system unless an entrypoint said)."""
    return _acting.get()


def act_as(actor: Actor) -> Token[Actor]:
    """Name who acts for the rest of the current task (an HTTP request, a command);
    ``stop_acting(token)`` gives the previous actor back."""
    return _acting.set(actor)


def stop_acting(token: Token[Actor]) -> None:
    _acting.reset(token)


@contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    token = act_as(actor)
    try:
        yield actor
    finally:
        stop_acting(token)


@dataclass(eq=False)
class AuditEvent:
    action: Action
    occurred_at: datetime
    actor_type: ActorType
    actor_id: int | None = None
    target_user_id: int | None = None
    request_id: str | None = None
    ip: str | None = None
    # Names and flags only: never a password, hash, token or mail body.
    details: dict[str, object] = field(default_factory=dict)
    id: int | None = None  # assigned by the repository
    # The organization the change was made in, if any.
    org_id: int | None = None

    @classmethod
    def of(
        cls,
        action: Action,
        actor: Actor,
        at: datetime,
        target_user_id: int | None,
        details: dict[str, object] | None = None,
        org_id: int | None = None,
    ) -> AuditEvent:
        found = dict(details or {})
        if actor.name is not None:
            found["os_user"] = actor.name
        if actor.client_request_id is not None:
            found["client_request_id"] = actor.client_request_id
        return cls(
            action=action,
            occurred_at=at,
            actor_type=actor.type,
            actor_id=actor.id,
            target_user_id=target_user_id,
            request_id=actor.request_id,
            ip=actor.ip,
            details=found,
            org_id=org_id,
        )


@dataclass(frozen=True)
class AuditFilter:
    action: str | None = None
    actor_id: int | None = None
    target_user_id: int | None = None
    org_id: int | None = None


class AuditLog(abc.ABC):
    @abc.abstractmethod
    async def add(self, event: AuditEvent) -> None:
        """Record an event in the caller's transaction: it is kept if and only if the
        change it records commits."""

    @abc.abstractmethod
    async def page(self, where: AuditFilter, page: PageRequest) -> tuple[list[AuditEvent], int]:
        """One page of the matching events, newest first, and how many match."""

    @abc.abstractmethod
    async def delete_before(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` events older than ``before``; how many."""
