"""Response bodies, shared by the API and the CLI. Each shape is written once, as a
pydantic model, which is also what the OpenAPI document shows. The API's routes return
domain objects and FastAPI validates them against the route's model (reading the
attributes of the same names) and serialises them; the CLI prints ``Model.of(obj)``,
the same model's JSON data. Either way nothing gets through that the model does not
name: no hash, no secret."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from domain.model import Session as SessionEntity


def _isoformat(value: datetime) -> str:
    return value.isoformat()


# Pydantic writes a UTC time as "…Z"; the API has always sent "…+00:00" (``isoformat``),
# and clients may compare the strings. The schema stays a plain date-time.
Timestamp = Annotated[
    datetime,
    PlainSerializer(_isoformat, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class Body(BaseModel):
    """A response body, read from an object's attributes of the same names."""

    # Every field is always sent, those with a default too (``token_type``): the
    # response schemas in the OpenAPI document say so.
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    @classmethod
    def of(cls, obj: object, **extra: Any) -> dict[str, Any]:
        """``obj``'s body as JSON data (what the CLI prints), validated by the model;
        ``extra`` gives what ``obj`` does not have."""
        return cls.read(obj, **extra).model_dump(mode="json")

    @classmethod
    def read(cls, obj: object, **extra: Any) -> Self:
        """The model read from ``obj``'s attributes, ``extra`` taking precedence."""
        if not extra:
            return cls.model_validate(obj, from_attributes=True)
        missing = object()
        values = {name: extra.get(name, getattr(obj, name, missing)) for name in cls.model_fields}
        present = {name: value for name, value in values.items() if value is not missing}
        return cls.model_validate(present, from_attributes=True)


class User(Body):
    id: int
    email: str
    username: str
    full_name: str | None
    is_active: bool
    is_superuser: bool
    is_verified: bool = Field(description="The current email address has been confirmed.")
    created_at: Timestamp


class PublicUser(Body):
    id: int
    username: str
    full_name: str | None
    created_at: Timestamp


class UserPage(Body):
    items: list[PublicUser]
    total: int
    page: int
    size: int
    pages: int


class Session(Body):
    id: str
    created_at: Timestamp
    last_used_at: Timestamp
    user_agent: str | None
    current: bool

    @classmethod
    def seen_from(cls, session: SessionEntity, current_session_id: str) -> Session:
        """The session as the caller of ``current_session_id`` sees it."""
        return cls.read(session, current=session.id == current_session_id)


class TokenPair(Body):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a token type, not a secret
    expires_in: int = Field(description="Seconds until the access token expires.")


class Status(Body):
    status: Literal["ok"] = "ok"


class AdminUserPage(Body):
    items: list[User]
    total: int
    page: int
    size: int
    pages: int


class AuditEvent(Body):
    id: int
    occurred_at: Timestamp
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

    @classmethod
    def of_event(cls, event: Any) -> dict[str, Any]:
        return cls.of(event, action=str(event.action), actor_type=event.actor_type.value)


class AuditPage(Body):
    items: list[AuditEvent]
    total: int
    page: int
    size: int
    pages: int
