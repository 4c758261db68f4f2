"""Alembic, driven from code: the CLI's ``app db …`` and the tests use these.

Alembic is imported where a migration runs, not with this module: a server that never
migrates should not carry Alembic, nor log its plug-ins' set-up.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

if TYPE_CHECKING:
    from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config  # noqa: PLC0415 - see the module's docstring

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    # The caller owns logging; alembic.ini's handlers are for the bare `alembic` command.
    config.attributes["configure_logging"] = False
    return config


def _in_thread(fn: Callable[..., None], *args: object) -> None:
    # The migration environment runs its own event loop, which cannot nest in a
    # running one: a worker thread makes these safe to call from anywhere.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(fn, *args).result()


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""
    from alembic import command  # noqa: PLC0415 - see the module's docstring

    _in_thread(command.upgrade, alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    """Revert migrations down to ``revision`` (``base`` for an empty database)."""
    from alembic import command  # noqa: PLC0415 - see the module's docstring

    _in_thread(command.downgrade, alembic_config(database_url), revision)


def head_revisions(database_url: str) -> tuple[str, ...]:
    from alembic.script import ScriptDirectory  # noqa: PLC0415 - see the module's docstring

    return tuple(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())


async def current_revisions(database_url: str) -> tuple[str, ...]:
    """The revisions the database is at (empty before the first migration)."""

    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415 - as above

    def heads(conn: Connection) -> tuple[str, ...]:
        return tuple(MigrationContext.configure(conn).get_current_heads())

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(heads)
    finally:
        await engine.dispose()


def current(database_url: str) -> tuple[str, ...]:
    return asyncio.run(current_revisions(database_url))


def next_revision(config: Config) -> str:
    """The id of the next revision: the project's are numbered, 0001 onwards."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415 - see the module's docstring

    numbers = [
        int(script.revision)
        for script in ScriptDirectory.from_config(config).walk_revisions()
        if script.revision.isdigit()
    ]
    return f"{max(numbers, default=0) + 1:04d}"


def autogenerate(database_url: str, message: str) -> Path:
    """Write a new revision for what the tables define and the database (upgraded to
    head first) lacks; the new file's path."""
    from alembic import command  # noqa: PLC0415 - see the module's docstring

    upgrade(database_url)
    written: list[Path] = []

    def revision(config: Config) -> None:
        with warnings.catch_warnings():
            # SQLite cannot reflect the expression indexes (lower(email)): nothing to diff.
            warnings.filterwarnings("ignore", message=".*expression-based index")
            script = command.revision(
                config, message=message, autogenerate=True, rev_id=next_revision(config)
            )
        scripts = script if isinstance(script, list) else [script]
        written.extend(Path(s.path) for s in scripts if s is not None)

    _in_thread(revision, alembic_config(database_url))
    return written[0]
