"""The composition root: every port bound to its adapter (``Adapters``), every use case
to its ports (``UseCases``), each declared once, by name, with dependency-injector.

The HTTP API, the CLI and the job runner all resolve their use cases here, by type
(``services.get(LogIn)``), so no business rule is wired twice; "who builds ``LogIn``?"
is a grep. A new use case is one ``providers.Factory`` line in ``UseCases``; at start-up
``check_wiring`` refuses a dependency whose type does not fit its parameter. Tests swap
anything with the library's own ``provider.override(...)``, at any time.
"""

from __future__ import annotations

import typing
from collections.abc import AsyncIterator, Iterable
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
from adapters.schema import DatabaseSchema
from adapters.totp import PyotpCodes
from adapters.unit_of_work import unit_of_work
from application.access_tokens import CreateAccessToken, ListAccessTokens, RevokeAccessToken
from application.admin import (
    DeleteUser,
    EndUserSessions,
    GetUser,
    ListUserSessions,
    QueuePasswordReset,
    SearchUsers,
    SetActive,
    SetPassword,
    UpdateUser,
)
from application.audit import ListAuditEvents
from application.auth import (
    Authenticate,
    EndSession,
    ListSessions,
    LogIn,
    LogOut,
    LogOutEverywhere,
    Reauthenticate,
    RecentAuthentication,
    RefreshTokens,
)
from application.email import (
    EmailPolicy,
    RequestPasswordReset,
    RequestVerificationLink,
    ResendVerification,
    ResetPassword,
    VerifyEmail,
)
from application.mfa import (
    CompleteMfaLogin,
    ConfirmTotp,
    DisableTotp,
    GetMfaStatus,
    RegenerateRecoveryCodes,
    ResetMfa,
    StartTotp,
)
from application.orgs import (
    AcceptInvitation,
    ChangeRole,
    CreateOrg,
    DeleteOrg,
    GetOrg,
    InviteMember,
    ListInvitations,
    ListMembers,
    ListMyOrgs,
    ListOrgAuditEvents,
    RemoveMember,
    RenameOrg,
    RevokeInvitation,
)
from application.outbox import (
    ListOutbox,
    OutboxState,
    RelayOutbox,
    RelayPolicy,
    RetryOutbox,
    SendTestMail,
)
from application.passkeys import (
    DeletePasskey,
    ListPasskeys,
    PasskeyLogin,
    RegisterPasskey,
    RenamePasskey,
    StartPasskeyLogin,
    StartPasskeyRegistration,
)
from application.retention import ApplyRetention, PurgeTokens, RetentionPolicy
from application.signing_keys import (
    EnsureSigningKey,
    ListSigningKeys,
    PublishedSigningKeys,
    RevokeSigningKey,
    RotateSigningKeys,
    RunKeyLifecycle,
)
from application.tokens import TokenPolicy
from application.users import DeleteAccount, ListUsers, RegisterUser, UpdateProfile
from domain.mail import MailTemplates, MailTransport
from domain.mfa import TotpCodes
from domain.outbox import RetryPolicy
from domain.passkeys import WebAuthn
from domain.ports import (
    Clock,
    DatabaseProbe,
    FailedLoginCounter,
    PasswordHasher,
    RateLimits,
    SchemaProbe,
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
        "mfa": settings.rate_limit_mfa,
        "email_token": settings.rate_limit_email_token,
        "verification_email": settings.rate_limit_verification_email,
        "password_reset": settings.rate_limit_password_reset,
        "invitations": settings.rate_limit_invitations,
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


def relying_party(settings: Settings) -> WebAuthn:
    """The passkey ceremonies: py_webauthn (and the OpenSSL bindings it brings, some
    5 MB) loads in the process that runs one, on first use."""
    from adapters.passkey_ceremonies import PyWebAuthn  # noqa: PLC0415

    return PyWebAuthn(
        rp_id=settings.webauthn_rp_id,
        rp_name=settings.relying_party_name,
        origins=settings.webauthn_origins,
    )


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
        invitation_path=settings.invitation_accept_path,
        invitation_ttl=timedelta(days=settings.invitation_ttl_days),
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


async def release_on_shutdown(database: Database, hasher: PasswordHasher) -> AsyncIterator[None]:
    """What the adapters hold, released by ``shutdown_resources()``: the database pool
    and the hasher's threads. Nothing to open: the pool connects on first use."""
    try:
        yield
    finally:
        await database.dispose()
        if isinstance(hasher, Argon2Hasher):
            hasher.close()


class Adapters(containers.DeclarativeContainer):
    """Every port bound to its adapter, built on first use: nothing connects at import."""

    settings = providers.Dependency(instance_of=Settings)

    database = providers.Singleton(
        Database,
        url=settings.provided.database_url,
        pool_size=settings.provided.database_pool_size,
        max_overflow=settings.provided.database_max_overflow,
    )
    # Whether the schema is at the code's head revision (readiness): remembers once it is.
    schema = providers.Singleton(DatabaseSchema, database=database)
    clock = providers.Singleton(SystemClock)
    hasher = providers.Singleton(Argon2Hasher)
    key_policy = providers.Singleton(key_policy_of, settings)
    # Seals the private parts of the signing keys with SECRET_KEY (ES256, EdDSA).
    key_maker = providers.Singleton(
        AesGcmKeyMaker, secret_key=providers.Callable(signing_key, settings)
    )
    # TOTP, its secrets sealed with SECRET_KEY like the signing keys' private parts.
    totp = providers.Singleton(PyotpCodes, secret_key=providers.Callable(signing_key, settings))
    # The relying party of passkeys.
    webauthn = providers.Singleton(relying_party, settings)
    # Units of work: use cases get the factory itself (``.provider``), one per transaction.
    uow = providers.Factory(unit_of_work, database=database)
    # For use cases that only read: no transaction, one round trip per query.
    reader = providers.Factory(unit_of_work, database=database, read_only=True)
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
                PublishedSigningKeys, reader=reader.provider, clock=clock, key_policy=key_policy
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
    token_policy = providers.Singleton(
        TokenPolicy,
        access_ttl=settings.provided.access_token_ttl,
        refresh_ttl=settings.provided.refresh_token_ttl,
    )
    email_policy = providers.Singleton(email_policy_of, settings)
    transport = providers.Singleton(mail_transport, settings)
    templates = providers.Singleton(
        mail_templates,
        overrides_dir=settings.provided.mail_templates_dir,
        defaults=providers.Dict(project_name=settings.provided.project_name),
    )
    relay_policy = providers.Singleton(relay_policy_of, settings)
    retention = providers.Singleton(retention_of, settings)
    # Keeps job runner replicas from running the same job at once.
    job_lock = providers.Singleton(DatabaseJobLock, database=database)
    resources = providers.Resource(release_on_shutdown, database=database, hasher=hasher)


class UseCases(containers.DeclarativeContainer):
    """Every use case, built from the ports it needs, named here one by one. Factories:
    a use case holds no state, and one built anew sees every override at once."""

    adapters = providers.DependenciesContainer()
    settings = providers.Dependency(instance_of=Settings)
    uow, reader = adapters.uow.provider, adapters.reader.provider
    clock = adapters.clock

    # Accounts and sessions
    register_user = providers.Factory(RegisterUser, uow=uow, hasher=adapters.hasher, clock=clock)
    log_in = providers.Factory(
        LogIn,
        uow=uow,
        hasher=adapters.hasher,
        codec=adapters.codec,
        clock=clock,
        failed_logins=adapters.failed_logins,
        policy=adapters.token_policy,
        require_verified_email=settings.provided.require_verified_email,
    )
    authenticate = providers.Factory(
        Authenticate, reader=reader, uow=uow, codec=adapters.codec, clock=clock
    )
    refresh_tokens = providers.Factory(
        RefreshTokens, uow=uow, codec=adapters.codec, clock=clock, policy=adapters.token_policy
    )
    reauthenticate = providers.Factory(
        Reauthenticate,
        uow=uow,
        hasher=adapters.hasher,
        totp=adapters.totp,
        webauthn=adapters.webauthn,
        clock=clock,
        failed_logins=adapters.failed_logins,
    )
    recent_authentication = providers.Factory(
        RecentAuthentication, clock=clock, window=settings.provided.reauth_window
    )
    log_out = providers.Factory(LogOut, uow=uow, codec=adapters.codec, clock=clock)
    log_out_everywhere = providers.Factory(LogOutEverywhere, uow=uow, clock=clock)
    list_sessions = providers.Factory(ListSessions, reader=reader, clock=clock)
    end_session = providers.Factory(EndSession, uow=uow, clock=clock)
    update_profile = providers.Factory(
        UpdateProfile,
        uow=uow,
        hasher=adapters.hasher,
        clock=clock,
        failed_logins=adapters.failed_logins,
    )
    delete_account = providers.Factory(DeleteAccount, uow=uow, clock=clock)
    list_users = providers.Factory(ListUsers, reader=reader)

    # Second factors
    get_mfa_status = providers.Factory(GetMfaStatus, reader=reader)
    start_totp = providers.Factory(
        StartTotp,
        uow=uow,
        totp=adapters.totp,
        clock=clock,
        issuer=settings.provided.totp_issuer,
    )
    confirm_totp = providers.Factory(ConfirmTotp, uow=uow, totp=adapters.totp, clock=clock)
    disable_totp = providers.Factory(DisableTotp, uow=uow, clock=clock)
    regenerate_recovery_codes = providers.Factory(RegenerateRecoveryCodes, uow=uow, clock=clock)
    complete_mfa_login = providers.Factory(
        CompleteMfaLogin,
        uow=uow,
        totp=adapters.totp,
        webauthn=adapters.webauthn,
        codec=adapters.codec,
        clock=clock,
        failed_logins=adapters.failed_logins,
        policy=adapters.token_policy,
    )
    reset_mfa = providers.Factory(ResetMfa, uow=uow, clock=clock)
    start_passkey_registration = providers.Factory(
        StartPasskeyRegistration, uow=uow, webauthn=adapters.webauthn, clock=clock
    )
    register_passkey = providers.Factory(
        RegisterPasskey, uow=uow, webauthn=adapters.webauthn, clock=clock
    )
    list_passkeys = providers.Factory(ListPasskeys, reader=reader)
    rename_passkey = providers.Factory(RenamePasskey, uow=uow)
    delete_passkey = providers.Factory(DeletePasskey, uow=uow, clock=clock)
    start_passkey_login = providers.Factory(
        StartPasskeyLogin, uow=uow, webauthn=adapters.webauthn, clock=clock
    )
    passkey_login = providers.Factory(
        PasskeyLogin,
        uow=uow,
        webauthn=adapters.webauthn,
        codec=adapters.codec,
        clock=clock,
        failed_logins=adapters.failed_logins,
        policy=adapters.token_policy,
        require_verified_email=settings.provided.require_verified_email,
    )

    # Personal access tokens
    create_access_token = providers.Factory(CreateAccessToken, uow=uow, clock=clock)
    list_access_tokens = providers.Factory(ListAccessTokens, reader=reader, clock=clock)
    revoke_access_token = providers.Factory(RevokeAccessToken, uow=uow, clock=clock)

    # Organizations
    create_org = providers.Factory(
        CreateOrg, uow=uow, clock=clock, per_user=settings.provided.orgs_per_user
    )
    list_my_orgs = providers.Factory(ListMyOrgs, reader=reader)
    get_org = providers.Factory(GetOrg, reader=reader)
    rename_org = providers.Factory(RenameOrg, uow=uow, clock=clock)
    delete_org = providers.Factory(DeleteOrg, uow=uow, clock=clock)
    list_members = providers.Factory(ListMembers, reader=reader)
    change_role = providers.Factory(ChangeRole, uow=uow, clock=clock)
    remove_member = providers.Factory(RemoveMember, uow=uow, clock=clock)
    invite_member = providers.Factory(
        InviteMember, uow=uow, clock=clock, ttl=adapters.email_policy.provided.invitation_ttl
    )
    list_invitations = providers.Factory(ListInvitations, reader=reader, clock=clock)
    revoke_invitation = providers.Factory(RevokeInvitation, uow=uow, clock=clock)
    accept_invitation = providers.Factory(AcceptInvitation, uow=uow, clock=clock)
    list_org_audit_events = providers.Factory(ListOrgAuditEvents, reader=reader)

    # Mailed links
    verify_email = providers.Factory(VerifyEmail, uow=uow, clock=clock)
    resend_verification = providers.Factory(ResendVerification, uow=uow, clock=clock)
    request_verification_link = providers.Factory(RequestVerificationLink, uow=uow, clock=clock)
    request_password_reset = providers.Factory(RequestPasswordReset, uow=uow, clock=clock)
    reset_password = providers.Factory(ResetPassword, uow=uow, hasher=adapters.hasher, clock=clock)

    # Administration
    get_user = providers.Factory(GetUser, reader=reader)
    search_users = providers.Factory(SearchUsers, reader=reader)
    update_user = providers.Factory(UpdateUser, uow=uow, clock=clock)
    set_active = providers.Factory(SetActive, uow=uow, clock=clock)
    set_password = providers.Factory(SetPassword, uow=uow, hasher=adapters.hasher, clock=clock)
    delete_user = providers.Factory(DeleteUser, uow=uow, clock=clock)
    queue_password_reset = providers.Factory(QueuePasswordReset, uow=uow, clock=clock)
    list_user_sessions = providers.Factory(ListUserSessions, reader=reader, clock=clock)
    end_user_sessions = providers.Factory(EndUserSessions, uow=uow, clock=clock)
    list_audit_events = providers.Factory(ListAuditEvents, reader=reader)

    # Mail
    relay_outbox = providers.Factory(
        RelayOutbox,
        uow=uow,
        transport=adapters.transport,
        templates=adapters.templates,
        clock=clock,
        email_policy=adapters.email_policy,
        relay_policy=adapters.relay_policy,
        rate_limits=adapters.rate_limits,
    )
    list_outbox = providers.Factory(ListOutbox, reader=reader)
    outbox_state = providers.Factory(OutboxState, reader=reader)
    retry_outbox = providers.Factory(RetryOutbox, uow=uow, clock=clock)
    send_test_mail = providers.Factory(
        SendTestMail, transport=adapters.transport, templates=adapters.templates
    )

    # Signing keys
    ensure_signing_key = providers.Factory(
        EnsureSigningKey,
        uow=uow,
        reader=reader,
        key_maker=adapters.key_maker,
        clock=clock,
        key_policy=adapters.key_policy,
        key_set=adapters.key_set,
    )
    published_signing_keys = providers.Factory(
        PublishedSigningKeys, reader=reader, clock=clock, key_policy=adapters.key_policy
    )
    list_signing_keys = providers.Factory(
        ListSigningKeys, reader=reader, clock=clock, key_policy=adapters.key_policy
    )
    rotate_signing_keys = providers.Factory(
        RotateSigningKeys,
        uow=uow,
        key_maker=adapters.key_maker,
        clock=clock,
        key_policy=adapters.key_policy,
    )
    revoke_signing_key = providers.Factory(
        RevokeSigningKey,
        uow=uow,
        key_maker=adapters.key_maker,
        clock=clock,
        key_policy=adapters.key_policy,
    )
    run_key_lifecycle = providers.Factory(
        RunKeyLifecycle, uow=uow, clock=clock, key_policy=adapters.key_policy
    )

    # Housekeeping
    purge_tokens = providers.Factory(
        PurgeTokens,
        uow=uow,
        clock=clock,
        purge_pause_factor=settings.provided.token_purge_pause_factor,
    )
    apply_retention = providers.Factory(
        ApplyRetention, uow=uow, clock=clock, retention=adapters.retention
    )

    # Resources of your own (``app scaffold resource`` adds theirs above this line)


class Container(containers.DeclarativeContainer):
    """The adapters and the use cases of one process, over its settings."""

    settings = providers.Dependency(instance_of=Settings)
    adapters = providers.Container(Adapters, settings=settings)
    use_cases = providers.Container(UseCases, adapters=adapters, settings=settings)


# Ports asked for by class (``services.get(Clock)``): the adapter provider of each.
PORTS: dict[type, str] = {
    Clock: "clock",
    PasswordHasher: "hasher",
    TokenCodec: "codec",
    FailedLoginCounter: "failed_logins",
    RateLimits: "rate_limits",
    DatabaseProbe: "database",
    SchemaProbe: "schema",
    JobLock: "job_lock",
    TokenPolicy: "token_policy",
    MailTransport: "transport",
    MailTemplates: "templates",
    EmailPolicy: "email_policy",
    KeyPolicy: "key_policy",
    KeyMaker: "key_maker",
    KeySetCache: "key_set",
    TotpCodes: "totp",
    WebAuthn: "webauthn",
}


class UnknownDependency(LookupError):
    """A use case or port that no provider of the container offers."""


class ContainerServices:
    """``Services`` over the container, by type: each use case from its provider in
    ``UseCases`` (built anew each time, so an override of any provider applies at once),
    each port from its adapter's provider (``PORTS``)."""

    def __init__(self, container: Container) -> None:
        self.container = container
        self._providers: dict[type, providers.Provider[Any]] = {
            kind: getattr(container.adapters, name) for kind, name in PORTS.items()
        }
        for provider in use_case_providers(container):
            self._providers[provider.cls] = provider

    def get(self, kind: type[T]) -> T:
        return self.provider(kind)()

    def provider(self, kind: type[T]) -> providers.Provider[T]:
        """The provider of ``kind``: ``services.provider(LogIn).override(...)`` stands
        something else in for it (the library's own override)."""
        found = self._providers.get(kind)
        if found is None:
            raise UnknownDependency(
                f"nothing provides {kind.__name__}: declare it in entrypoints/container.py"
            )
        return found

    def require(self, kinds: Iterable[type]) -> None:
        """Refuse, naming them, what no provider offers (checked at start-up)."""
        missing = sorted({kind.__name__ for kind in kinds if kind not in self._providers})
        if missing:
            raise UnknownDependency(
                f"nothing provides {', '.join(missing)}: declare it in entrypoints/container.py"
            )

    async def open(self) -> None:
        await _awaited(self.container.adapters.init_resources())

    async def close(self) -> None:
        # Whatever was built is released, whether or not ``open`` ran.
        await self.open()
        await _awaited(self.container.adapters.shutdown_resources())


async def _awaited(result: object) -> None:
    if result is not None:
        await typing.cast(typing.Awaitable[object], result)


def use_case_providers(container: Container) -> list[providers.Factory[Any]]:
    found = container.use_cases.container.providers.values()
    return [provider for provider in found if isinstance(provider, providers.Factory)]


class WiringError(TypeError):
    """A use case is given a dependency of another type than its parameter asks for."""


def check_wiring(container: Container) -> None:
    """Every use case's declared dependencies fit the types its constructor asks for:
    a ``policy: NotePolicy`` given the ``TokenPolicy``, or a ``database: str`` given the
    database, stops the start naming both, instead of failing on first use."""
    for provider in use_case_providers(container):
        hints = typing.get_type_hints(provider.cls.__init__)
        for name, given in provider.kwargs.items():
            wanted = hints.get(name)
            if not isinstance(wanted, type):
                continue  # a callable (a unit of work factory), a union: nothing to say
            for made in _provided_types(given):
                if not issubclass(made, wanted):
                    raise WiringError(
                        f"{provider.cls.__name__}({name}: {wanted.__name__}) is given"
                        f" {made.__name__}: fix its line in entrypoints/container.py"
                    )


def _provided_types(given: object) -> list[type]:
    """The types a dependency may provide, as far as its declaration says: the class it
    builds, a function's declared return, a value; for a selector, its choice under
    this process's settings."""
    if isinstance(given, providers.Dependency) and given.overridden:
        given = given.last_overriding
    if isinstance(given, providers.Selector) and given.selector is not None:
        return _provided_types(given.providers[given.selector()])
    if isinstance(given, providers.Factory | providers.Singleton | providers.Callable):
        built = given.provides
        if isinstance(built, type):
            return [built]
        returned = typing.get_type_hints(built).get("return")
        return [returned] if isinstance(returned, type) else []
    if isinstance(given, providers.Object):
        return [type(given.provides)]
    if not isinstance(given, providers.Provider):
        return [type(given)]
    return []


def create_container(settings: Settings) -> Container:
    return Container(settings=settings)


def build_services(settings: Settings) -> ContainerServices:
    """The services of a process: a container of its own over ``settings``, its wiring
    checked."""
    container = create_container(settings)
    check_wiring(container)
    return ContainerServices(container)
