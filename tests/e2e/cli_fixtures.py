"""Fixtures of the CLI and job runner tests, imported explicitly by their modules.

``cli`` drives the real ``app`` command (Typer's CliRunner) on the test's database:
the settings come from the environment at command time, as in production, with
every setting variable cleared first and the working directory a temporary one, so
neither a developer's shell nor their ``.env`` changes what a test sees.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from dependency_injector import providers
from sqlalchemy import select
from typer.testing import CliRunner, Result

from adapters.database import Database, is_unavailable
from adapters.hasher import Argon2Hasher
from adapters.orm import refresh_tokens, sessions
from adapters.unit_of_work import SqlUnitOfWork
from domain.model import RefreshToken, Session
from domain.ports import RefreshTokenRepository, SessionRepository
from entrypoints.cli.runtime import Runtime
from entrypoints.console import AlembicMigrations, app
from entrypoints.container import ContainerServices, build_services
from entrypoints.settings import Settings, load_settings

T = TypeVar("T")
PASSWORD = "correct horse battery staple"
SECRET_KEY = "k" * 64
DAY = timedelta(days=1)
APP = Path(sys.executable).parent / "app"


def fast_services(settings: Settings) -> ContainerServices:
    """The production services with a cheap argon2id (real parameters cost ~50 ms)."""
    services = build_services(settings)
    services.container.adapters.hasher.override(
        providers.Singleton(Argon2Hasher, time_cost=1, memory_cost=1024)
    )
    return services


def cli_runtime(make_services: Callable[[Settings], ContainerServices] = fast_services) -> Runtime:
    """The commands' runtime, as ``app`` has it, with the cheap hasher."""
    return Runtime(
        make_services=make_services,
        migrations=AlembicMigrations(),
        is_unavailable=is_unavailable,
    )


def clean_env(database_url: str, **extra: str) -> dict[str, str | None]:
    """Environment changes for a command: every setting variable unset but these."""
    env: dict[str, str | None] = {
        name: None for name in os.environ if name.lower() in Settings.model_fields
    }
    env.update(
        DATABASE_URL=database_url,
        ENVIRONMENT="test",
        SECRET_KEY=SECRET_KEY,
        LOG_FORMAT="json",
        RATE_LIMIT_ENABLED="false",
    )
    env.update(extra)
    return env


@dataclass
class Cli:
    """The ``app`` command on one database; ``run`` also uses its container."""

    database_url: str
    env: dict[str, str | None] = field(default_factory=dict)
    runner: CliRunner = field(default_factory=CliRunner)

    def __call__(self, *args: str, input: str | None = None, **env: str) -> Result:
        return self.runner.invoke(
            app,
            list(args),
            input=input,
            env={**self.env, **env},
            obj=cli_runtime(),
        )

    def settings(self) -> Settings:
        return load_settings(
            database_url=self.database_url,
            environment="test",
            secret_key=SECRET_KEY,
            rate_limit_enabled=False,
        )

    def run(self, work: Callable[[ContainerServices], Awaitable[T]]) -> T:
        """Run ``work`` on a container of this database (use cases, as the API would)."""

        async def go() -> T:
            container = fast_services(self.settings())
            try:
                return await work(container)
            finally:
                await container.close()

        return asyncio.run(go())

    def create_user(self, username: str, *flags: str, **options: str) -> int:
        """``app users create`` (exit 0 asserted); the new id."""
        args = ["users", "create", "--email", f"{username}@example.com"]
        args += ["--username", username, "--password", options.pop("password", PASSWORD)]
        args += flags
        for name, value in options.items():
            args += [f"--{name.replace('_', '-')}", value]
        result = self(*args)
        assert result.exit_code == 0, result.stderr
        return int(result.stdout)


def one_error_line(result: Result) -> str:
    """A failed command wrote exactly one line, ``error: …``, to stderr and no more."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


# Seeding refresh tokens and sessions directly, with chosen expiry dates.


async def seed_session(
    database_url: str,
    user_id: int,
    *,
    expires_at: datetime,
    tokens: list[dict[str, Any]],
) -> tuple[str, list[str]]:
    """A session of ``user_id`` and its refresh tokens (each a dict of fields)."""
    database = Database(database_url)
    try:
        now = datetime.now(UTC)
        session = Session(
            user_id=user_id,
            created_at=now - 30 * DAY,
            last_used_at=now - 30 * DAY,
            expires_at=expires_at,
        )
        made = [
            RefreshToken(
                session_id=session.id,
                user_id=user_id,
                created_at=now - 30 * DAY,
                **fields,
            )
            for fields in tokens
        ]
        async with SqlUnitOfWork(database) as uow:
            await uow.repository(SessionRepository).add(session)
            for token in made:
                await uow.repository(RefreshTokenRepository).add(token)
            await uow.commit()
        return session.id, [token.id for token in made]
    finally:
        await database.dispose()


async def existing_ids(database_url: str) -> tuple[set[str], set[str]]:
    """The ids of every stored (session, refresh token)."""
    database = Database(database_url)
    try:
        async with database.engine.connect() as conn:
            session_ids = set((await conn.scalars(select(sessions.c.id))).all())
            token_ids = set((await conn.scalars(select(refresh_tokens.c.id))).all())
        return session_ids, token_ids
    finally:
        await database.dispose()
