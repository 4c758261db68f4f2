"""The composition root: every port bound to its adapter, every use case to its ports.

The HTTP API, the CLI and the job runner all resolve their use cases here, so no
business rule is wired twice. Tests swap an adapter with ``provider.override(...)``.
"""

from __future__ import annotations

import inspect
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from dependency_injector import containers, providers

from adapters.clock import SystemClock
from adapters.database import Database
from adapters.hasher import Argon2Hasher
from adapters.jwks_codec import JwksCodec, NoKeySet
from adapters.jwt_codec import JwtCodec
from adapters.key_crypto import AesGcmKeyMaker
from adapters.key_file import load_or_create_key
from adapters.locks import DatabaseJobLock
from adapters.rate_limit import LimitsFailedLoginCounter, NamedRateLimits, RateLimiter
from adapters.unit_of_work import unit_of_work
from application.email import EmailPolicy
from application.outbox import RelayPolicy
from application.retention import RetentionPolicy
from application.signing_keys import PublishedSigningKeys
from application.tokens import TokenPolicy
from domain.mail import MailTemplates, MailTransport
from domain.outbox import RetryPolicy
from domain.ports import (
    Clock,
    DatabaseProbe,
    FailedLoginCounter,
    PasswordHasher,
    RateLimits,
    TokenCodec,
)
from domain.signing_keys import KeyMaker, KeyPolicy, KeySetCache
from entrypoints.metrics import RATE_LIMIT_STORE_ERRORS
from entrypoints.scheduler.jobs import JobLock
from entrypoints.settings import Settings

T = TypeVar("T")


def signing_key(settings: Settings) -> str:
    """``SECRET_KEY``, or outside production (where it may be unset) a random key made
    on first use and kept beside the database."""
    return settings.secret_key or load_or_create_key(settings.key_file)


def key_policy_of(settings: Settings) -> KeyPolicy:
    return KeyPolicy(
        algorithm=settings.algorithm,
        # Refresh tokens are JWTs too, and the longest-lived.
        token_lifetime=max(settings.access_token_ttl, settings.refresh_token_ttl),
        activation_delay=timedelta(seconds=settings.jwt_key_activation_delay_seconds),
    )


def codec_kind(settings: Settings) -> str:
    """Which codec signs: the stored key pairs, or SECRET_KEY itself (HMAC)."""
    return "keys" if key_policy_of(settings).asymmetric else "hmac"


def ip_limits(settings: Settings) -> dict[str, str]:
    """The named limits: per client IP, user or address as the HTTP API applies them,
    and the mails one address may receive, as the relay applies it."""
    return {
        "email_change": settings.rate_limit_email_change,
        "mail_recipient": settings.mail_per_recipient_limit,
        "login": settings.rate_limit_login,
        "refresh": settings.rate_limit_refresh,
        "logout": settings.rate_limit_logout,
        "register": settings.rate_limit_register,
        "email_token": settings.rate_limit_email_token,
        "verification_email": settings.rate_limit_verification_email,
        "password_reset": settings.rate_limit_password_reset,
    }


# The mail adapters are imported where they are built: only a process that sends mail
# (the relay) loads aiosmtplib and Jinja2.


def mail_transport(settings: Settings) -> MailTransport:
    """The transport ``MAIL_BACKEND`` names."""
    from adapters.mail import ConsoleTransport, NullTransport, SmtpTransport  # noqa: PLC0415

    backend = settings.effective_mail_backend
    if backend == "smtp":
        assert settings.smtp_host is not None  # the settings insist on it
        return SmtpTransport(
            settings.smtp_host,
            settings.smtp_port,
            sender=settings.mail_from,
            username=settings.smtp_username,
            password=settings.smtp_password,
            security=settings.smtp_security,
            timeout=settings.smtp_timeout_seconds,
        )
    if backend == "console":
        return ConsoleTransport(settings.mail_from)
    return NullTransport()


def mail_templates(overrides_dir: Path | None, defaults: dict[str, object]) -> MailTemplates:
    from adapters.mail_templates import JinjaMailTemplates  # noqa: PLC0415

    return JinjaMailTemplates(overrides_dir=overrides_dir, defaults=defaults)


def email_policy_of(settings: Settings) -> EmailPolicy:
    return EmailPolicy(
        frontend_url=settings.frontend_url,
        verify_path=settings.email_verify_path,
        reset_path=settings.password_reset_path,
        verification_ttl=timedelta(hours=settings.email_verification_ttl_hours),
        reset_ttl=timedelta(minutes=settings.password_reset_ttl_minutes),
        require_verified=settings.require_verified_email,
    )


def relay_policy_of(settings: Settings) -> RelayPolicy:
    # The lease outlasts a whole batch of sends that each take the full timeout.
    batch_size = RelayPolicy.batch_size
    lease = timedelta(seconds=max(300.0, 2 * batch_size * settings.smtp_timeout_seconds))
    return RelayPolicy(
        batch_size=batch_size,
        lease=lease,
        retry=RetryPolicy(max_attempts=settings.outbox_max_attempts),
        # SQLite takes one writer at a time: concurrent settlements would only queue.
        concurrency=1 if settings.database_url.startswith("sqlite") else RelayPolicy.concurrency,
    )


def retention_of(settings: Settings) -> RetentionPolicy:
    return RetentionPolicy(
        sent_mail=timedelta(days=settings.outbox_retention_days),
        audit_events=timedelta(days=settings.audit_retention_days),
    )


class Container(containers.DeclarativeContainer):
    """Every port bound to its adapter. A use case's constructor names the ports it
    needs (``uow``, ``reader``, ``clock``…); these providers go by the same names."""

    settings = providers.Dependency(instance_of=Settings)

    # Singletons are built on first use: nothing connects at import.
    database = providers.Singleton(
        Database,
        url=settings.provided.database_url,
        pool_size=settings.provided.database_pool_size,
        max_overflow=settings.provided.database_max_overflow,
    )
    clock = providers.Singleton(SystemClock)
    hasher = providers.Singleton(Argon2Hasher)
    key_policy = providers.Singleton(key_policy_of, settings)
    # Seals the private parts of the signing keys with SECRET_KEY (ES256, EdDSA).
    key_maker = providers.Singleton(
        AesGcmKeyMaker, secret_key=providers.Callable(signing_key, settings)
    )
    codec = providers.Selector(
        providers.Callable(codec_kind, settings),
        hmac=providers.Singleton(
            JwtCodec,
            secret_key=providers.Callable(signing_key, settings),
            algorithm=settings.provided.algorithm,
            issuer=settings.provided.jwt_issuer,
            audience=settings.provided.jwt_audience,
            enforce_key_length=settings.provided.is_production,
            clock=clock,
        ),
        keys=providers.Singleton(
            JwksCodec,
            load_keys=providers.Factory(
                PublishedSigningKeys,
                # A factory of read-only units of work, as ``reader`` below.
                reader=providers.Factory(unit_of_work, database=database, read_only=True).provider,
                clock=clock,
                key_policy=key_policy,
            ),
            key_maker=key_maker,
            algorithm=settings.provided.algorithm,
            issuer=settings.provided.jwt_issuer,
            audience=settings.provided.jwt_audience,
            clock=clock,
        ),
    )
    # With an asymmetric ALGORITHM the codec holds the cached key set.
    key_set = providers.Selector(
        providers.Callable(codec_kind, settings), hmac=providers.Singleton(NoKeySet), keys=codec
    )
    rate_limiter = providers.Singleton(
        RateLimiter,
        storage_uri=settings.provided.rate_limit_storage_uri,
        enabled=settings.provided.rate_limit_enabled,
        on_store_error=providers.Object(RATE_LIMIT_STORE_ERRORS.inc),
    )
    rate_limits = providers.Singleton(
        NamedRateLimits, limiter=rate_limiter, limits=providers.Callable(ip_limits, settings)
    )
    failed_logins = providers.Singleton(
        LimitsFailedLoginCounter,
        limiter=rate_limiter,
        limit=settings.provided.rate_limit_login_account,
    )
    policy = providers.Singleton(
        TokenPolicy,
        access_ttl=settings.provided.access_token_ttl,
        refresh_ttl=settings.provided.refresh_token_ttl,
    )
    email_policy = providers.Singleton(email_policy_of, settings)
    require_verified_email = settings.provided.require_verified_email
    transport = providers.Singleton(mail_transport, settings)
    templates = providers.Singleton(
        mail_templates,
        overrides_dir=settings.provided.mail_templates_dir,
        defaults=providers.Dict(project_name=settings.provided.project_name),
    )
    relay_policy = providers.Singleton(relay_policy_of, settings)
    retention = providers.Singleton(retention_of, settings)
    uow = providers.Factory(unit_of_work, database=database)
    # For use cases that only read: no transaction, one round trip per query.
    reader = providers.Factory(unit_of_work, database=database, read_only=True)
    # Keeps job runner replicas from running the same job at once.
    job_lock = providers.Singleton(DatabaseJobLock, database=database)
    purge_pause_factor = settings.provided.token_purge_pause_factor


# Ports asked for by class (``services.get(Clock)``): the provider of each.
PORTS: dict[type, str] = {
    Clock: "clock",
    PasswordHasher: "hasher",
    TokenCodec: "codec",
    FailedLoginCounter: "failed_logins",
    RateLimits: "rate_limits",
    DatabaseProbe: "database",
    JobLock: "job_lock",
    TokenPolicy: "policy",
    MailTransport: "transport",
    MailTemplates: "templates",
    EmailPolicy: "email_policy",
    KeyPolicy: "key_policy",
    KeyMaker: "key_maker",
    KeySetCache: "key_set",
}
# Constructor parameters that take a factory of units of work rather than an instance.
UNIT_OF_WORK_FACTORIES = ("uow", "reader")


class ContainerServices:
    """``Services`` over the container: ports from their providers, and use cases
    built once each from the ports their constructors name. Adding a use case
    registers nothing: its constructor says what it needs."""

    def __init__(self, container: Container) -> None:
        self.container = container
        self._built: dict[type, Any] = {}

    def get(self, kind: type[T]) -> T:
        found = self._built.get(kind)
        if found is None:
            found = self._built[kind] = self._make(kind)
        return found

    def _make(self, kind: type[T]) -> T:
        if kind in PORTS:
            return getattr(self.container, PORTS[kind])()  # type: ignore[no-any-return]
        arguments: dict[str, Any] = {}
        for name, parameter in inspect.signature(kind).parameters.items():
            provider = getattr(self.container, name, None)
            if name in UNIT_OF_WORK_FACTORIES:
                arguments[name] = provider  # called for each new unit of work
            elif isinstance(provider, providers.Provider):
                arguments[name] = provider()
            elif parameter.default is inspect.Parameter.empty:
                raise TypeError(f"{kind.__name__} needs {name!r}, which no provider offers")
        return kind(**arguments)

    def override(self, kind: type[T], instance: T) -> None:
        """Serve ``instance`` for ``kind`` from now on (tests swap a use case so)."""
        self._built[kind] = instance

    async def close(self) -> None:
        await close_container(self.container)


def create_container(settings: Settings) -> Container:
    return Container(settings=settings)


def build_services(settings: Settings) -> ContainerServices:
    """The services of a process: a container of its own over ``settings``."""
    return ContainerServices(create_container(settings))


async def close_container(container: Container) -> None:
    """Release what the container's singletons hold (pool, threads), if they were built."""
    await container.database().dispose()
    hasher = container.hasher()
    if isinstance(hasher, Argon2Hasher):
        hasher.close()
