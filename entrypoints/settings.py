"""Configuration from the environment and an optional ``.env``, validated once at start."""

from __future__ import annotations

import ipaddress
import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from limits import parse_many
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from application.retention import PURGE_PAUSE_FACTOR
from domain.rules import HMAC_MIN_KEY_BYTES as MIN_KEY_BYTES

PRODUCTION_MIN_KEY_BYTES = 32
# A key with fewer distinct characters than this ("aaaa…", "abab…") is guessable.
MIN_DISTINCT_KEY_CHARACTERS = 10
# Keys that have been published (in earlier versions of this code, or as examples):
# anyone could sign tokens with them.
PUBLISHED_SECRET_KEYS = frozenset(
    {
        "development-only-key-do-not-use-in-production-0123456789abcdef0123",
        "a-production-key-of-at-least-32-bytes!",
        "change-me-to-a-long-random-string-in-production",
        "your-secret-key-here-change-it-in-production",
    }
)
MEMORY_LIMITS_WARNING = (
    "RATE_LIMIT_STORAGE_URI is memory://: every process counts on its own, so the limits"
    " multiply with --workers and with replicas. Set it to redis://… to share them."
)
# Outside production with no SECRET_KEY: the file that keeps the generated key.
KEY_FILE_NAME = ".secret-key"


class InvalidSettings(Exception):
    """A setting is missing or wrong; the message is one line naming the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        frozen=True,
    )

    environment: Literal["development", "test", "production"] = "development"
    project_name: str = "Backend Template"
    database_url: str = "sqlite+aiosqlite:///./app.db"
    database_pool_size: int = Field(default=10, ge=1, le=200)
    database_max_overflow: int = Field(default=10, ge=0, le=200)

    secret_key: str = ""
    algorithm: Literal["HS256", "HS384", "HS512", "ES256", "EdDSA"] = "HS256"
    access_token_expire_minutes: int = Field(default=30, ge=1, le=24 * 60)
    refresh_token_expire_days: int = Field(default=7, ge=1, le=365)
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    # How long a key made by `app keys rotate` is published before it signs (ES256, EdDSA).
    jwt_key_activation_delay_seconds: int = Field(default=600, ge=0, le=30 * 24 * 3600)
    # How recent a session's login or re-authentication must be for the operations that
    # change how an account is protected (API.md, "Recent authentication").
    reauth_window_minutes: int = Field(default=10, ge=1, le=24 * 60)
    # The issuer an authenticator app shows beside a TOTP code; PROJECT_NAME when unset.
    mfa_issuer: str | None = Field(default=None, min_length=1, max_length=64)
    # Passkeys: the relying party's id (a registrable domain of the front end's origin),
    # its name (PROJECT_NAME when unset), and the origins a ceremony may come from.
    webauthn_rp_id: str = Field(default="localhost", min_length=1, max_length=253)
    webauthn_rp_name: str | None = Field(default=None, min_length=1, max_length=64)
    webauthn_origins: Annotated[list[str], NoDecode] = ["http://localhost:3000"]

    allowed_origins: Annotated[list[str], NoDecode] = []
    # Host header values the API answers (``*.example.com`` covers the subdomains).
    allowed_hosts: Annotated[list[str], NoDecode] = ["*"]
    # When METRICS_PORT is set, /metrics is served there only (not on the API's port).
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"

    rate_limit_enabled: bool = True
    rate_limit_login: str = "5/minute"
    rate_limit_refresh: str = "10/minute"
    rate_limit_logout: str = "10/minute"
    rate_limit_login_account: str = "10/15minutes"
    rate_limit_register: str = "10/minute"
    # The second step of a login, per client IP.
    rate_limit_mfa: str = "10/minute"
    rate_limit_storage_uri: str = "memory://"
    trusted_proxies: Annotated[list[str], NoDecode] = []

    # Mailed links and their tokens.
    frontend_url: str = "http://localhost:3000"
    email_verify_path: str = "/verify-email"
    password_reset_path: str = "/reset-password"  # noqa: S105 - a path
    email_verification_ttl_hours: int = Field(default=48, ge=1, le=30 * 24)
    password_reset_ttl_minutes: int = Field(default=60, ge=5, le=24 * 60)
    require_verified_email: bool = False
    rate_limit_email_token: str = "10/minute"  # noqa: S105 - a rate
    rate_limit_verification_email: str = "3/hour"
    rate_limit_password_reset: str = "5/hour"  # noqa: S105 - a rate
    # Email changes per user, and the mails any one address may receive.
    rate_limit_email_change: str = "3/hour"
    mail_per_recipient_limit: str = "10/day"

    # Organizations: how many one user may create, and their invitations.
    orgs_per_user: int = Field(default=20, ge=1, le=10_000)
    invitation_ttl_days: int = Field(default=7, ge=1, le=90)
    invitation_accept_path: str = "/accept-invitation"
    # Invitations per organization.
    rate_limit_invitations: str = "50/day"

    # Mail: how it leaves, and the outbox that holds it until then.
    mail_backend: Literal["console", "smtp", "none"] | None = None
    mail_from: str = "Backend Template <no-reply@localhost>"
    mail_templates_dir: Path | None = None
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    outbox_poll_seconds: float = Field(default=2.0, gt=0, le=3600)
    outbox_max_attempts: int = Field(default=8, ge=1, le=100)
    outbox_retention_days: int = Field(default=7, ge=1, le=3650)
    outbox_relay_in_api: bool | None = None
    audit_retention_days: int = Field(default=365, ge=1, le=36500)

    token_purge_interval_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    # After each batch the purge rests this many times the batch's duration (0: none).
    token_purge_pause_factor: float = Field(default=PURGE_PAUSE_FACTOR, ge=0, le=100)
    # The job runner's own Prometheus /metrics port; 0 serves none.
    jobs_metrics_port: int = Field(default=0, ge=0, le=65535)
    # The address it listens on: loopback unless the operator opens it up.
    jobs_metrics_host: str = "127.0.0.1"

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["console", "json"] | None = None

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator(
        "rate_limit_login",
        "rate_limit_refresh",
        "rate_limit_logout",
        "rate_limit_login_account",
        "rate_limit_register",
        "rate_limit_mfa",
        "rate_limit_email_token",
        "rate_limit_verification_email",
        "rate_limit_password_reset",
        "rate_limit_email_change",
        "mail_per_recipient_limit",
        "rate_limit_invitations",
    )
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        try:
            items = parse_many(value)
        except ValueError:
            items = []
        if len(items) != 1 or items[0].amount < 1:
            raise ValueError(f"{value!r} is not a rate limit such as '5/minute'")
        return value

    @field_validator(
        "allowed_origins", "allowed_hosts", "trusted_proxies", "webauthn_origins", mode="before"
    )
    @classmethod
    def _json_list(cls, value: object) -> object:
        # An empty variable means "none", not a JSON error.
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return []
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                raise ValueError('must be a JSON array, e.g. ["value"]') from None
        return value

    @field_validator("rate_limit_storage_uri")
    @classmethod
    def _storage_uri(cls, value: str) -> str:
        if value.split("://", 1)[0].removeprefix("async+") not in {
            "memory",
            "redis",
            "rediss",
        }:
            raise ValueError("must be memory:// or redis://host:port/db")
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError('must list at least one host, or ["*"] for any')
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value

    @field_validator("jobs_metrics_host", "metrics_host")
    @classmethod
    def _host(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address, such as 127.0.0.1") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("frontend_url")
    @classmethod
    def _frontend_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or len(value) < 10:
            raise ValueError("must be an http:// or https:// URL, such as https://app.example.com")
        return value.rstrip("/")

    @field_validator("email_verify_path", "password_reset_path", "invitation_accept_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or "?" in value or "#" in value:
            raise ValueError("must be a path starting with '/', without '?' or '#'")
        return value

    @field_validator("mail_templates_dir")
    @classmethod
    def _templates_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{str(value)!r} is not a directory")
        return value

    @model_validator(mode="after")
    def _mail(self) -> Settings:
        if self.mail_backend == "smtp" and not self.smtp_host:
            raise ValueError("SMTP_HOST is required with MAIL_BACKEND=smtp")
        if self.is_production and self.mail_backend == "console":
            raise ValueError(
                "MAIL_BACKEND: console prints mail with its links, so production refuses it;"
                " use smtp (or none)"
            )
        return self

    @model_validator(mode="after")
    def _secret_key(self) -> Settings:
        if self.environment == "production":
            # With ES256 or EdDSA the key seals the private signing keys: as long.
            needed = max(PRODUCTION_MIN_KEY_BYTES, MIN_KEY_BYTES.get(self.algorithm, 0))
            key = self.secret_key
            if not key:
                raise ValueError("SECRET_KEY is required in production")
            if len(key.encode()) < needed:
                raise ValueError(
                    f"SECRET_KEY must be at least {needed} bytes in production"
                    f" (with {self.algorithm})"
                )
            if key in PUBLISHED_SECRET_KEYS:
                raise ValueError("SECRET_KEY is a published example: make a random one")
            if len(set(key)) < MIN_DISTINCT_KEY_CHARACTERS:
                raise ValueError("SECRET_KEY is too easy to guess: make a random one")
        return self

    @property
    def access_token_ttl(self) -> timedelta:
        return timedelta(minutes=self.access_token_expire_minutes)

    @property
    def refresh_token_ttl(self) -> timedelta:
        return timedelta(days=self.refresh_token_expire_days)

    @property
    def effective_mail_backend(self) -> Literal["console", "smtp", "none"]:
        """The configured backend; by default the console in development (so that
        ``make run`` shows its mail) and nothing elsewhere (tests)."""
        if self.mail_backend is not None:
            return self.mail_backend
        return "console" if self.environment == "development" else "none"

    @property
    def relay_in_api(self) -> bool:
        """Whether ``app serve`` delivers the outbox itself (by default in development)."""
        if self.outbox_relay_in_api is not None:
            return self.outbox_relay_in_api
        return self.environment == "development"

    @property
    def min_key_bytes(self) -> int:
        """The shortest SECRET_KEY for ALGORITHM (production wants at least 32)."""
        return MIN_KEY_BYTES.get(self.algorithm, PRODUCTION_MIN_KEY_BYTES)

    @property
    def reauth_window(self) -> timedelta:
        return timedelta(minutes=self.reauth_window_minutes)

    @property
    def totp_issuer(self) -> str:
        return self.mfa_issuer or self.project_name

    @property
    def relying_party_name(self) -> str:
        return self.webauthn_rp_name or self.project_name

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def key_file(self) -> Path:
        """Where the key generated outside production is kept: beside the SQLite
        database file, else in the working directory."""
        prefix = "sqlite+aiosqlite:///"
        if self.database_url.startswith(prefix):
            path = self.database_url.removeprefix(prefix).split("?", 1)[0]
            if path and path != ":memory:":
                return Path(path).parent / KEY_FILE_NAME
        return Path(KEY_FILE_NAME)

    def warnings(self) -> list[str]:
        """What an operator should hear at start-up about this configuration."""
        found = []
        if not self.secret_key:
            found.append(
                f"SECRET_KEY is not set: tokens are signed with a random key kept in"
                f" {self.key_file}. Set SECRET_KEY before exposing this service."
            )
        elif len(self.secret_key.encode()) < self.min_key_bytes:
            found.append(
                f"SECRET_KEY is shorter than {self.min_key_bytes} bytes;"
                " production refuses such a key."
            )
        if self.is_production and self.rate_limits_per_process:
            found.append(MEMORY_LIMITS_WARNING)
        if self.is_production and self.mail_backend is None:
            found.append(
                "MAIL_BACKEND is not set: mail (verification, password reset) is dropped."
                " Set MAIL_BACKEND=smtp and SMTP_HOST to deliver it."
            )
        return found

    @property
    def rate_limits_per_process(self) -> bool:
        """Whether each process counts rate limits on its own (``memory://``)."""
        return self.rate_limit_enabled and self.rate_limit_storage_uri.removeprefix(
            "async+"
        ).startswith("memory://")

    @property
    def effective_log_format(self) -> Literal["console", "json"]:
        if self.log_format:
            return self.log_format
        return "console" if self.environment == "development" else "json"


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings; raise ``InvalidSettings`` with one line that
    names the variable at fault."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        variable = "_".join(str(part) for part in error["loc"] if isinstance(part, str)).upper()
        message = error["msg"].removeprefix("Value error, ")
        if not variable:
            return _raise(message)
        return _raise(f"{variable}: {message}")


def _raise(message: str) -> Settings:
    raise InvalidSettings(f"invalid configuration: {message}")
