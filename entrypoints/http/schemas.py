"""Request bodies of the HTTP API (the README, "HTTP API") and the problem shapes of its errors; the
response bodies are in ``entrypoints.presenters``, shared with the CLI."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    model_validator,
)

from domain.access_tokens import MAX_LIFETIME_DAYS
from domain.access_tokens import NAME as TOKEN_NAME
from domain.fields import Text as DomainText
from domain.mfa import SecondFactor
from domain.orgs import NAME as ORG_NAME
from domain.orgs import SLUG, SLUG_RULE, Role
from domain.rules import (
    EMAIL_MAX_LENGTH,
    FULL_NAME_MAX_LENGTH,
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
    USERNAME_PATTERN,
    normalize_username,
)
from domain.scopes import Scope

NoNul = r"^[^\x00]*$"


def _normal_username(value: object) -> object:
    """NFKC first, as the rules do: a full-width look-alike is judged (and found taken)
    as the name it stands for, not refused for its characters."""
    return normalize_username(value) if isinstance(value, str) else value


# The before-validator runs ahead of the pattern check, which the OpenAPI document shows.
Username = Annotated[
    str,
    StringConstraints(pattern=f"^{USERNAME_PATTERN.pattern}$"),
    BeforeValidator(_normal_username),
]
Password = Annotated[
    str,
    StringConstraints(
        min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH, pattern=NoNul
    ),
    Field(
        description="Taken exactly as sent, and not one of the most common passwords"
        " (which are refused with 422)."
    ),
]
FullName = Annotated[str, StringConstraints(max_length=FULL_NAME_MAX_LENGTH, pattern=NoNul)]
Email = Annotated[
    EmailStr,
    StringConstraints(max_length=EMAIL_MAX_LENGTH),
    Field(
        description="Stored lower-cased. Addresses at special-use domains (such as"
        " `.test` or `localhost`) are refused with 422."
    ),
]
# A credential as sent to log in; its rules are checked by the use case, not here, so
# that a malformed one fails like a wrong one.
Credential = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=NoNul)]
Token = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class Strict(BaseModel):
    """Unknown fields are refused, so no client can set what it was not offered."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class UserCreate(Strict):
    email: Email
    username: Username
    password: Password
    full_name: FullName | None = None


def _not_null(schema: dict[str, Any]) -> None:
    """Documents an optional field that refuses null: it may be left out, not sent empty."""
    branches = [b for b in schema.pop("anyOf", []) if b.get("type") != "null"]
    if len(branches) == 1:
        schema.update(branches[0])
    else:
        schema["anyOf"] = branches
    schema.pop("default", None)


def optional_not_null() -> Any:
    """An optional field that refuses null (see ``UserUpdate``), documented as such."""
    return Field(default=None, json_schema_extra=_not_null)


class UserUpdate(Strict):
    # Changing the email or the password needs the current password: said in the schema
    # too (JSON Schema's dependentRequired, part of OpenAPI 3.1).
    model_config = ConfigDict(
        json_schema_extra={
            "dependentRequired": {
                "email": ["current_password"],
                "password": ["current_password"],
            }
        }
    )

    email: Email | None = optional_not_null()
    username: Username | None = optional_not_null()
    full_name: FullName | None = None
    password: Password | None = optional_not_null()
    current_password: Credential | None = optional_not_null()

    @model_validator(mode="after")
    def _no_null_for_required_fields(self) -> UserUpdate:
        for name in ("email", "username", "password", "current_password"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class AdminUserUpdate(Strict):
    email: Email | None = optional_not_null()
    username: Username | None = optional_not_null()
    full_name: FullName | None = None
    is_active: bool | None = optional_not_null()
    is_superuser: bool | None = optional_not_null()
    is_verified: bool | None = optional_not_null()

    @model_validator(mode="after")
    def _no_null_for_required_fields(self) -> AdminUserUpdate:
        for name in ("email", "username", "is_active", "is_superuser", "is_verified"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class LoginRequest(Strict):
    username: Credential = Field(description="The username or the email address.")
    password: Credential


class RefreshRequest(Strict):
    refresh_token: Token


TotpCode = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=NoNul),
    Field(description="The code the authenticator app shows (6 digits)."),
]
RecoveryCode = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=NoNul),
    Field(description="One of the recovery codes; case, spaces and dashes do not matter."),
]
MfaToken = Annotated[
    str,
    StringConstraints(min_length=1, max_length=256, pattern=NoNul),
    Field(description="The `mfa_token` of the login's 403 `mfa_required` answer."),
]
ChallengeId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=NoNul),
    Field(description="The `challenge_id` that came with the passkey options."),
]
PasskeyCredential = Annotated[
    dict[str, Any],
    Field(description="The browser's `PublicKeyCredential`, as its `toJSON()` gives it."),
]
PasskeyName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NoNul)]
# Each second factor by the fields that make it: a passkey is a challenge and a credential.
FACTORS: dict[str, tuple[str, ...]] = {
    "code": ("code",),
    "recovery_code": ("recovery_code",),
    "passkey": ("challenge_id", "credential"),
}
FACTOR_FIELDS = tuple(name for fields in FACTORS.values() for name in fields)


# At most one factor, a passkey's two fields together: the rules the validators hold.
AT_MOST_ONE_FACTOR: dict[str, Any] = {
    "dependentRequired": {"challenge_id": ["credential"], "credential": ["challenge_id"]},
    "not": {
        "anyOf": [
            {"required": [*a, *b]}
            for i, a in enumerate(FACTORS.values())
            for b in list(FACTORS.values())[i + 1 :]
        ]
    },
}


class SecondFactorFields(Strict):
    """At most one second factor (which one is up to the user)."""

    model_config = ConfigDict(json_schema_extra=AT_MOST_ONE_FACTOR)

    code: TotpCode | None = optional_not_null()
    recovery_code: RecoveryCode | None = optional_not_null()
    challenge_id: ChallengeId | None = optional_not_null()
    credential: PasskeyCredential | None = optional_not_null()

    @model_validator(mode="after")
    def _one_factor(self) -> SecondFactorFields:
        for name in FACTOR_FIELDS:
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        if ("challenge_id" in self.model_fields_set) != ("credential" in self.model_fields_set):
            raise ValueError("a passkey is challenge_id and credential together")
        if len(self.factors_sent()) > 1:
            raise ValueError("send one second factor: code, recovery_code or a passkey")
        return self

    def factors_sent(self) -> list[str]:
        return [
            kind
            for kind, fields in FACTORS.items()
            if any(name in self.model_fields_set for name in fields)
        ]

    def factor(self) -> SecondFactor:
        return SecondFactor(
            code=self.code,
            recovery_code=self.recovery_code,
            challenge_id=self.challenge_id,
            credential=self.credential,
        )


class Reauthentication(SecondFactorFields):
    password: Credential


class MfaLogin(SecondFactorFields):
    """The token of the password step and exactly one second factor."""

    model_config = ConfigDict(
        json_schema_extra={
            **AT_MOST_ONE_FACTOR,
            "oneOf": [{"required": list(fields)} for fields in FACTORS.values()],
        },
    )

    mfa_token: MfaToken

    @model_validator(mode="after")
    def _a_factor(self) -> MfaLogin:
        if not self.factors_sent():
            raise ValueError("send a second factor: code, recovery_code or a passkey")
        return self


class PasskeyRegistration(Strict):
    challenge_id: ChallengeId
    credential: PasskeyCredential
    name: PasskeyName | None = Field(
        default=None,
        description="By default the authenticator's name when it is known, else `Passkey`.",
        json_schema_extra=_not_null,
    )

    @model_validator(mode="after")
    def _no_null(self) -> PasskeyRegistration:
        if "name" in self.model_fields_set and self.name is None:
            raise ValueError("name cannot be null")
        return self


class PasskeyRename(Strict):
    name: PasskeyName


class PasskeyLoginOptions(Strict):
    """Empty for a passwordless login; with the password step's `mfa_token` for the
    second step."""

    mfa_token: MfaToken | None = optional_not_null()

    @model_validator(mode="after")
    def _no_null(self) -> PasskeyLoginOptions:
        if "mfa_token" in self.model_fields_set and self.mfa_token is None:
            raise ValueError("mfa_token cannot be null")
        return self


class PasskeyAssertion(Strict):
    challenge_id: ChallengeId
    credential: PasskeyCredential


class TotpConfirmation(Strict):
    code: TotpCode


GRANT_TYPES = ("password", "refresh_token")


class ClientFields(BaseModel):
    """What OAuth2 clients may send besides a grant's own fields: accepted, ignored."""

    scope: str | None = Field(default=None, description="Ignored.")
    client_id: str | None = Field(default=None, description="Ignored: every client is public.")
    client_secret: str | None = Field(default=None, description="Ignored.")


class PasswordGrantForm(ClientFields):
    """The password grant (RFC 6749, 4.3): Swagger's Authorize, and stock clients."""

    grant_type: Literal["password"] = "password"
    username: Credential = Field(description="The username or the email address.")
    password: Credential


class RefreshGrantForm(ClientFields):
    """The refresh grant (RFC 6749, 6); at ``/refresh`` its ``grant_type`` may be left
    out."""

    grant_type: Literal["refresh_token"]
    refresh_token: Token


class RefreshForm(RefreshGrantForm):
    grant_type: Literal["refresh_token"] = "refresh_token"


class VerificationRequest(Strict):
    email: Email


# A mailed token; one of another length is refused by the use case like a wrong one.
EmailToken = Annotated[
    str,
    StringConstraints(min_length=1, max_length=1024, pattern=NoNul),
    Field(description="The `token` parameter of the mailed link."),
]


class VerifyEmailRequest(Strict):
    token: EmailToken


class PasswordResetRequest(Strict):
    email: Email


class PasswordReset(Strict):
    token: EmailToken
    new_password: Password


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str
    request_id: str | None = Field(default=None, description="Only on 500 responses.")
    mfa_token: str | None = Field(
        default=None,
        description="Only on 403 `mfa_required` from the login: the token of its second"
        " step (`/api/v1/auth/login/mfa`), single use, valid 5 minutes.",
    )
    methods: list[Literal["totp", "recovery_code", "passkey"]] | None = Field(
        default=None, description="Only on 403 `mfa_required`: the second factors the user has."
    )


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationProblem(Problem):
    errors: list[ValidationErrorItem]


def openapi_components() -> dict[str, Any]:
    """Schemas referenced by the hand-written problem responses."""
    components: dict[str, Any] = {}
    for model in (Problem, ValidationProblem):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    return components


def text(limits: DomainText) -> Any:
    """A text field's request schema, from the limits its domain module declares: the
    pattern accepts exactly what the domain's rule does (``domain.fields``), and a value
    it refuses is told the rule in words, not the pattern."""
    RULES[limits.pattern] = limits.rule
    return Field(
        pattern=limits.pattern,
        description=f"{limits.min_length}-{limits.max_length} characters once the blanks"
        " around are trimmed (they are), without NUL.",
    )


# What a text field's pattern means, in words, for the 422 of a value it refuses.
RULES: dict[str, str] = {}


class AccessTokenCreate(Strict):
    name: Annotated[str, text(TOKEN_NAME)]
    scopes: list[Scope] = Field(
        min_length=1,
        max_length=len(Scope),
        description="What the token may do. The `admin:` scopes are for superusers only.",
    )
    expires_in_days: int = Field(ge=1, le=MAX_LIFETIME_DAYS, description="Required: 1 to 365.")


class OrgCreate(Strict):
    slug: Annotated[str, StringConstraints(min_length=3, max_length=40, pattern=SLUG.pattern)] = (
        Field(description=f"Its address in the API, never changed: {SLUG_RULE}.")
    )
    name: Annotated[str, text(ORG_NAME)]


class OrgUpdate(Strict):
    name: Annotated[str, text(ORG_NAME)]


class RoleChange(Strict):
    role: Role


class InvitationCreate(Strict):
    email: Email
    role: Role = Field(description="Admins invite members and admins; owners invite owners too.")


class InvitationAccept(Strict):
    token: Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=NoNul)] = Field(
        description="The `token` parameter of the invitation's link."
    )
