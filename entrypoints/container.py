"""The composition root: every port bound to its adapter, every use case to its ports.

The HTTP API, the CLI and the job runner all resolve their use cases here, so no
business rule is wired twice. Tests swap an adapter with ``provider.override(...)``.
"""

from __future__ import annotations

from dependency_injector import containers, providers

from adapters.clock import SystemClock
from adapters.database import Database
from adapters.key_file import load_or_create_key
from adapters.locks import DatabaseJobLock
from adapters.rate_limit import LimitsFailedLoginCounter, RateLimiter
from adapters.security import Argon2Hasher, JwtCodec
from adapters.unit_of_work import unit_of_work
from application.admin import GetUser, PurgeTokens, SetActive, SetPassword
from application.auth import (
    Authenticate,
    EndSession,
    ListSessions,
    LogIn,
    LogOut,
    LogOutEverywhere,
    RefreshTokens,
)
from application.tokens import TokenPolicy
from application.users import DeleteAccount, ListUsers, RegisterUser, UpdateProfile
from entrypoints.settings import Settings


def signing_key(settings: Settings) -> str:
    """``SECRET_KEY``, or outside production (where it may be unset) a random key made
    on first use and kept beside the database."""
    return settings.secret_key or load_or_create_key(settings.key_file)


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    # Adapters. Singletons are built on first use: nothing connects at import.
    database = providers.Singleton(
        Database,
        url=settings.provided.database_url,
        pool_size=settings.provided.database_pool_size,
        max_overflow=settings.provided.database_max_overflow,
    )
    clock = providers.Singleton(SystemClock)
    hasher = providers.Singleton(Argon2Hasher)
    codec = providers.Singleton(
        JwtCodec,
        secret_key=providers.Callable(signing_key, settings),
        algorithm=settings.provided.algorithm,
        issuer=settings.provided.jwt_issuer,
        audience=settings.provided.jwt_audience,
        enforce_key_length=settings.provided.is_production,
    )
    rate_limiter = providers.Singleton(
        RateLimiter,
        storage_uri=settings.provided.rate_limit_storage_uri,
        enabled=settings.provided.rate_limit_enabled,
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
    uow = providers.Factory(unit_of_work, database=database)
    # For use cases that only read: no transaction, one round trip per query.
    reader = providers.Factory(unit_of_work, database=database, read_only=True)
    # Keeps job runner replicas from running the same job at once.
    job_lock = providers.Singleton(DatabaseJobLock, database=database)

    # Use cases: stateless, so one of each.
    register_user = providers.Singleton(RegisterUser, uow=uow.provider, hasher=hasher, clock=clock)
    log_in = providers.Singleton(
        LogIn,
        uow=uow.provider,
        hasher=hasher,
        codec=codec,
        clock=clock,
        failed_logins=failed_logins,
        policy=token_policy,
    )
    authenticate = providers.Singleton(Authenticate, uow=reader.provider, codec=codec, clock=clock)
    refresh_tokens = providers.Singleton(
        RefreshTokens, uow=uow.provider, codec=codec, clock=clock, policy=token_policy
    )
    log_out = providers.Singleton(LogOut, uow=uow.provider, codec=codec, clock=clock)
    log_out_everywhere = providers.Singleton(LogOutEverywhere, uow=uow.provider, clock=clock)
    list_sessions = providers.Singleton(ListSessions, uow=reader.provider, clock=clock)
    end_session = providers.Singleton(EndSession, uow=uow.provider, clock=clock)
    update_profile = providers.Singleton(
        UpdateProfile, uow=uow.provider, hasher=hasher, clock=clock, failed_logins=failed_logins
    )
    delete_account = providers.Singleton(DeleteAccount, uow=uow.provider)
    list_users = providers.Singleton(ListUsers, uow=reader.provider)

    # The operator's.
    get_user = providers.Singleton(GetUser, uow=reader.provider)
    set_password = providers.Singleton(SetPassword, uow=uow.provider, hasher=hasher, clock=clock)
    set_active = providers.Singleton(SetActive, uow=uow.provider, clock=clock)
    purge_tokens = providers.Singleton(PurgeTokens, uow=uow.provider, clock=clock)


def create_container(settings: Settings) -> Container:
    return Container(settings=settings)


async def close_container(container: Container) -> None:
    """Release what the container's singletons hold (pool, threads), if they were built."""
    await container.database().dispose()
    hasher = container.hasher()
    if isinstance(hasher, Argon2Hasher):
        hasher.close()
