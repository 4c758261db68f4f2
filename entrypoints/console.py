"""The ``app`` console script: the admin CLI, the API server and the job runner under
one command. Part of the composition root: it hands the CLI and the job runner their
services, and sits outside the three delivery adapters so that none imports another."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import ModuleType
from typing import Annotated

import typer

from adapters.database import is_unavailable
from application.signing_keys import EnsureSigningKey
from domain.signing_keys import ASYMMETRIC_ALGORITHMS
from entrypoints.cli.audit import audit
from entrypoints.cli.db import db
from entrypoints.cli.keys import keys
from entrypoints.cli.mail import mail, outbox
from entrypoints.cli.runtime import (
    MigrationError,
    Runtime,
    load_cli_settings,
    reported_errors,
    runtime_of,
)
from entrypoints.cli.scaffold import scaffold
from entrypoints.cli.tokens import tokens
from entrypoints.cli.users import users
from entrypoints.container import build_services
from entrypoints.logging import get_logger
from entrypoints.scheduler.runner import run_job_runner
from entrypoints.serve import exec_server
from entrypoints.services import Services
from entrypoints.settings import MEMORY_LIMITS_WARNING, Settings

DISTRIBUTION = "backend-template"

app = typer.Typer(
    name="app",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(users)
app.add_typer(tokens)
app.add_typer(db)
app.add_typer(scaffold)
app.add_typer(outbox)
app.add_typer(audit)
app.add_typer(mail)
app.add_typer(keys)
jobs = typer.Typer(
    name="jobs", help="The scheduled jobs.", no_args_is_help=True, rich_markup_mode="markdown"
)
app.add_typer(jobs)


def _show_version(value: bool) -> None:
    if value:
        try:
            found = version(DISTRIBUTION)
        except PackageNotFoundError:
            found = "unknown (not installed)"
        typer.echo(f"app {found}")
        raise typer.Exit


@app.callback()
def root(
    ctx: typer.Context,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Run and operate the backend: serve the API, migrate the database, manage users
    and tokens, and run the scheduled jobs.

    Settings come from the environment and an optional .env file (see .env.example);
    DATABASE_URL names the database.
    """
    if ctx.obj is None:  # tests hand in a runtime of their own
        ctx.obj = runtime()


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="The port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    reload: Annotated[
        bool, typer.Option("--reload", help="Restart on code changes (development).")
    ] = False,
) -> None:
    """Serve the HTTP API with uvicorn until SIGTERM or Ctrl-C."""
    settings = load_cli_settings(one_shot=False)  # fail fast, in one line, on a bad setting
    if workers > 1 and settings.rate_limits_per_process and not settings.is_production:
        # (In production every worker says so itself, at start-up.)
        get_logger("app").warning(MEMORY_LIMITS_WARNING)
    check_signing_keys(runtime_of(ctx), settings)
    exec_server(host, port, workers, reload)


@jobs.command("run")
def run_jobs(ctx: typer.Context) -> None:
    """Run the scheduled jobs until SIGTERM or Ctrl-C.

    The token purge runs at start, then every TOKEN_PURGE_INTERVAL_MINUTES, logging
    each run. Any number of runners may share one PostgreSQL database: a run that
    finds another runner's lock skips. A stop lets the run in flight finish its batch.
    """
    runtime = runtime_of(ctx)
    settings = load_cli_settings(one_shot=False)
    with reported_errors(settings.database_url, runtime.is_unavailable):
        asyncio.run(_run_jobs(settings, runtime.make_services(settings)))


async def _run_jobs(settings: Settings, services: Services) -> None:
    try:
        # The lifecycle job and the API must agree on the keys: same first-start check.
        await services.get(EnsureSigningKey)()
    except BaseException:
        await services.close()
        raise
    await run_job_runner(settings, services)


def check_signing_keys(runtime: Runtime, settings: Settings) -> None:
    """With ES256/EdDSA: create the first key if none signs, and fail now, in one line,
    if SECRET_KEY cannot decrypt it (every worker's start would fail on it with a
    traceback). With HMAC nothing is checked and nothing connects."""
    if settings.algorithm not in ASYMMETRIC_ALGORITHMS:
        return

    async def ensure() -> None:
        services = runtime.make_services(settings)
        try:
            await services.get(EnsureSigningKey)()
        finally:
            await services.close()

    with reported_errors(settings.database_url, runtime.is_unavailable):
        asyncio.run(ensure())


class AlembicMigrations:
    """``adapters.migrations``, imported on first use (only ``app db`` pays for Alembic,
    a seventh of every other command's start-up), with Alembic's refusals as
    ``MigrationError``."""

    @staticmethod
    @contextmanager
    def _module() -> Iterator[ModuleType]:
        from alembic.util.exc import CommandError  # noqa: PLC0415

        from adapters import migrations  # noqa: PLC0415

        try:
            yield migrations
        except CommandError as exc:
            raise MigrationError(str(exc)) from exc

    def upgrade(self, url: str, revision: str) -> None:
        with self._module() as migrations:
            migrations.upgrade(url, revision)

    def downgrade(self, url: str, revision: str) -> None:
        with self._module() as migrations:
            migrations.downgrade(url, revision)

    def current(self, url: str) -> tuple[str, ...]:
        with self._module() as migrations:
            return tuple(migrations.current(url))

    def head_revisions(self, url: str) -> tuple[str, ...]:
        with self._module() as migrations:
            return tuple(migrations.head_revisions(url))

    def autogenerate(self, url: str, message: str) -> Path:
        with self._module() as migrations:
            return Path(migrations.autogenerate(url, message))


def runtime() -> Runtime:
    """What the commands run on: the real services, migrations and error knowledge."""
    return Runtime(
        make_services=build_services,
        migrations=AlembicMigrations(),
        is_unavailable=is_unavailable,
    )


def main() -> None:
    app(prog_name="app")
