"""How every command runs: the settings are read when it runs, it gets services of its
own (closed at the end), and one handler turns any failure into exactly one line on
stderr and exit status 1 (a domain error's exit status is its category's, in
``EXIT_STATUS_BY_CATEGORY``)."""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, Protocol, TypeVar

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from domain.audit import Actor, ActorType, acting_as
from domain.errors import DomainError, ErrorCategory, InvalidValue, ServiceUnavailable, category_of
from entrypoints.logging import configure_logging, get_logger
from entrypoints.services import Services
from entrypoints.settings import InvalidSettings, Settings, load_settings

T = TypeVar("T")
EXIT_FAILURE = 1
# The one table from a domain error to the exit status of the command it ends, by its
# category. OPERATIONS.md: 1 for every domain error (2 is bad usage, Typer's).
EXIT_STATUS_BY_CATEGORY: dict[ErrorCategory, int] = {
    ErrorCategory.REJECTED: EXIT_FAILURE,
    ErrorCategory.UNAUTHENTICATED: EXIT_FAILURE,
    ErrorCategory.FORBIDDEN: EXIT_FAILURE,
    ErrorCategory.NOT_FOUND: EXIT_FAILURE,
    ErrorCategory.CONFLICT: EXIT_FAILURE,
    ErrorCategory.INVALID: EXIT_FAILURE,
    ErrorCategory.THROTTLED: EXIT_FAILURE,
    ErrorCategory.UNAVAILABLE: EXIT_FAILURE,
}

log = get_logger("entrypoints.cli")


class MigrationError(Exception):
    """A migration command was refused (an unknown revision and the like); the message
    says why."""


class Migrations(Protocol):
    """The schema migrations of a database URL (Alembic's, in the adapters). A refusal
    is a ``MigrationError``."""

    def upgrade(self, url: str, revision: str) -> None: ...
    def downgrade(self, url: str, revision: str) -> None: ...
    def current(self, url: str) -> tuple[str, ...]: ...
    def head_revisions(self, url: str) -> tuple[str, ...]: ...
    def autogenerate(self, url: str, message: str) -> Path: ...


def _never(_exc: BaseException) -> bool:
    return False


@dataclass(frozen=True)
class Runtime:
    """What the commands take from the composition root (``entrypoints.console`` passes
    it as the Typer context's ``obj``; tests pass their own)."""

    make_services: Callable[[Settings], Services]
    migrations: Migrations
    # Whether an error means the database cannot be reached (the adapters know).
    is_unavailable: Callable[[BaseException], bool] = _never


def runtime_of(ctx: typer.Context) -> Runtime:
    runtime = ctx.find_object(Runtime)
    if runtime is None:
        raise RuntimeError("the command ran without its Runtime (use entrypoints.console)")
    return runtime


def fail(message: str, status: int = EXIT_FAILURE) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(status)


def exit_status_of(error: DomainError) -> int:
    """The exit status a domain error ends a command with, from its category. One
    without a category is a programming error: a failure like any unexpected one."""
    category = category_of(error)
    return EXIT_STATUS_BY_CATEGORY[category] if category is not None else EXIT_FAILURE


def load_cli_settings(*, one_shot: bool = True) -> Settings:
    """The settings, or one line naming the bad variable and exit 1.

    Logs go to stderr. A one-shot command logs only warnings and errors (everything
    with ``LOG_LEVEL=DEBUG``), so that it prints its result and nothing else; a
    long-running one (``serve``, ``jobs run``) logs at ``LOG_LEVEL``.
    """
    with reported_errors():
        settings = load_settings()
    level = settings.log_level
    if one_shot and level != "DEBUG":
        level = max(level, "WARNING", key=logging.getLevelName)
    configure_logging(level=level, fmt=settings.effective_log_format)
    return settings


def run(ctx: typer.Context, work: Callable[[Services], Awaitable[T]]) -> T:
    """Run ``work`` on fresh services from the current settings; close them after.
    What it changes is recorded as done by the operator (the OS user)."""
    runtime = runtime_of(ctx)
    settings = load_cli_settings()
    with reported_errors(settings.database_url, runtime.is_unavailable), acting_as(operator()):
        return asyncio.run(_with(runtime.make_services(settings), work))


def operator() -> Actor:
    try:
        name = getpass.getuser()
    except Exception:  # no login name: no USER variable and no password database entry
        name = f"uid {os.getuid()}"
    return Actor(ActorType.OPERATOR, name=name)


async def _with(services: Services, work: Callable[[Services], Awaitable[T]]) -> T:
    try:
        await services.open()
        return await work(services)
    finally:
        await services.close()


@contextmanager
def reported_errors(
    database_url: str | None = None,
    is_unavailable: Callable[[BaseException], bool] = _never,
) -> Iterator[None]:
    """The one place where a command's failure becomes a line on stderr and exit 1.

    Usage errors (exit 2) and Ctrl-C (exit 130) are Typer's to report.
    """
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except InvalidSettings as exc:
        fail(str(exc))
    except InvalidValue as exc:
        fail(f"{exc.field}: {exc.detail}", exit_status_of(exc))
    except ServiceUnavailable as exc:
        fail(_unavailable(database_url, exc.__cause__ or exc, is_unavailable), exit_status_of(exc))
    except DomainError as exc:
        if category_of(exc) is None:
            log.debug("command failed", exc_info=True)
            fail(f"unexpected {type(exc).__name__}: {exc.detail}")
        fail(exc.detail, exit_status_of(exc))
    except MigrationError as exc:
        fail(_first_line(str(exc)))
    except Exception as exc:
        # The traceback is there for whoever asks for it with LOG_LEVEL=DEBUG.
        log.debug("command failed", exc_info=True)
        if is_unavailable(exc) or isinstance(exc, DBAPIError):
            fail(_unavailable(database_url, exc, is_unavailable))
        fail(f"unexpected {type(exc).__name__}: {_reason(exc)}")


def _unavailable(
    database_url: str | None, exc: BaseException, is_unavailable: Callable[[BaseException], bool]
) -> str:
    where = f" at {safe_url(database_url)}" if database_url else ""
    reason = _reason(exc)
    if re.search(r"no such table|relation \S+ does not exist", reason):
        return f"the database{where} is not migrated ({reason}): run `app db upgrade` first"
    if is_unavailable(exc):
        return f"the database{where} is unavailable: {reason}"
    return f"the database{where} refused: {reason}"


def safe_url(url: str) -> str:
    """``url`` with its password masked, fit for a message."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable URL)"


def _reason(exc: BaseException) -> str:
    original = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = _first_line(str(original)) or type(original).__name__
    # asyncpg's errors arrive as "<class 'asyncpg.exceptions.X'>: message".
    return re.sub(r"^<class '[\w.]+'>: ", "", text)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""
