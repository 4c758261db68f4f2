"""Response bodies, shared by the API and the CLI. Each shape is written once, as a
pydantic model, which is also what the OpenAPI document shows; ``of`` fills it from a
domain object, field by field (faster than validating a model), so nothing gets through
that the model does not name: no hash, no secret."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.access_tokens import AccessToken as AccessTokenEntity
from domain.model import Page
from domain.model import Session as SessionEntity
from domain.model import TokenPair as Pair
from domain.scopes import Scope


class Body(BaseModel):
    """A response body. ``Model.of(obj, **extra)``: its JSON, read from ``obj``'s
    attributes of the same names (``extra`` for what ``obj`` does not have)."""

    # Every field is always sent, those with a default too (``token_type``): the
    # response schemas in the OpenAPI document say so.
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    _names: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def of(cls, obj: object, **extra: Any) -> dict[str, Any]:
        names = cls._names or cls._cache_names()
        body = {name: extra[name] if name in extra else getattr(obj, name) for name in names}
        for name, value in body.items():
            if isinstance(value, datetime):  # in place, without a call per field
                body[name] = value.isoformat()
        return body

    @classmethod
    def _cache_names(cls) -> tuple[str, ...]:
        cls._names = tuple(cls.model_fields)
        return cls._names


class User(Body):
    id: int
    email: str
    username: str
    full_name: str | None
    is_active: bool
    is_superuser: bool
    is_verified: bool = Field(description="The current email address has been confirmed.")
    created_at: datetime


class PublicUser(Body):
    id: int
    username: str
    full_name: str | None
    created_at: datetime


class UserPage(Body):
    items: list[PublicUser]
    total: int
    page: int
    size: int
    pages: int

    @classmethod
    def of_page(cls, page: Page[Any]) -> dict[str, Any]:
        return cls.of(page, items=[PublicUser.of(user) for user in page.items])


class Session(Body):
    id: str
    created_at: datetime
    last_used_at: datetime
    user_agent: str | None
    current: bool

    @classmethod
    def of_session(cls, session: SessionEntity, current_session_id: str | None) -> dict[str, Any]:
        return cls.of(session, current=session.id == current_session_id)


class TokenPair(Body):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a token type, not a secret
    expires_in: int = Field(description="Seconds until the access token expires.")

    @classmethod
    def of_pair(cls, pair: Pair) -> dict[str, Any]:
        return cls.of(pair, token_type="bearer")  # noqa: S106


class MfaStatus(Body):
    totp: bool
    passkeys: int
    recovery_codes_left: int


class TotpSetup(Body):
    secret: str = Field(description="The pending secret, base32: shown once.")
    otpauth_uri: str = Field(description="The same secret as an `otpauth://totp/` URI.")


class RecoveryCodes(Body):
    recovery_codes: list[str] = Field(
        description="Shown once: each works once, instead of a code of the app."
    )


class Passkey(Body):
    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    backed_up: bool = Field(description="Whether the passkey is synced beyond one device.")


class AccessToken(Body):
    id: str
    name: str
    scopes: list[Scope] = Field(description="Sorted.")
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None = Field(description="To the minute.")

    @classmethod
    def of_token(cls, token: AccessTokenEntity) -> dict[str, Any]:
        return cls.of(token, scopes=sorted(token.scopes))


class NewAccessToken(AccessToken):
    token: str = Field(
        description="`app_pat_…`: shown in this answer only. Send it as "
        "`Authorization: Bearer <token>`."
    )


class Org(Body):
    id: int
    slug: str
    name: str
    created_at: datetime
    role: Literal["owner", "admin", "member"] = Field(description="The caller's.")

    @classmethod
    def of_membership(cls, membership: Any) -> dict[str, Any]:
        return cls.of(membership.org, role=membership.role.value)


class OrgPage(Body):
    items: list[Org]
    total: int
    page: int
    size: int
    pages: int

    @classmethod
    def of_page(cls, page: Page[Any]) -> dict[str, Any]:
        return cls.of(page, items=[Org.of_membership(m) for m in page.items])


class Member(Body):
    user_id: int
    username: str
    full_name: str | None
    role: Literal["owner", "admin", "member"]
    joined_at: datetime

    @classmethod
    def of_member(cls, member: Any) -> dict[str, Any]:
        return cls.of(member, role=member.role.value)


class MemberPage(Body):
    items: list[Member]
    total: int
    page: int
    size: int
    pages: int

    @classmethod
    def of_page(cls, page: Page[Any]) -> dict[str, Any]:
        return cls.of(page, items=[Member.of_member(m) for m in page.items])


class Invitation(Body):
    id: str
    email: str
    role: Literal["owner", "admin", "member"]
    invited_by: int | None
    created_at: datetime
    expires_at: datetime

    @classmethod
    def of_invitation(cls, invitation: Any) -> dict[str, Any]:
        return cls.of(invitation, role=invitation.role.value)


class CeremonyOptions(Body):
    challenge_id: str = Field(description="Send it back with the credential.")
    options: dict[str, Any] = Field(
        description="For `PublicKeyCredential.parseCreationOptionsFromJSON` (registration)"
        " or `parseRequestOptionsFromJSON` (authentication)."
    )


class Status(Body):
    status: Literal["ok"] = "ok"


class AdminUserPage(Body):
    items: list[User]
    total: int
    page: int
    size: int
    pages: int

    @classmethod
    def of_page(cls, page: Page[Any]) -> dict[str, Any]:
        return cls.of(page, items=[User.of(user) for user in page.items])


class AuditEvent(Body):
    id: int
    occurred_at: datetime
    action: str
    actor_type: Literal["user", "operator", "system"]
    actor_id: int | None
    target_user_id: int | None
    request_id: str | None
    ip: str | None
    details: dict[str, Any] = Field(
        description="What the action needs said: names of changed fields, flags; never a"
        " password, hash, token or mail body."
    )
    org_id: int | None = Field(description="The organization it happened in, if any.")

    @classmethod
    def of_event(cls, event: Any) -> dict[str, Any]:
        return cls.of(event, action=str(event.action), actor_type=event.actor_type.value)


class AuditPage(Body):
    items: list[AuditEvent]
    total: int
    page: int
    size: int
    pages: int

    @classmethod
    def of_page(cls, page: Page[Any]) -> dict[str, Any]:
        return cls.of(page, items=[AuditEvent.of_event(event) for event in page.items])
