"""Alembic environment: async engine, URL from the settings (or the caller)."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from alembic.operations.ops import MigrationScript
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

# Importing the list of repositories defines every table, a new resource's included.
import adapters.repositories  # noqa: F401
from adapters.migrations import next_revision
from adapters.orm import metadata

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = config.attributes.get("database_url")
    if url:
        return str(url)
    # Only the bare `alembic` command gets here; `app db` passes the URL in.
    from entrypoints.settings import load_settings  # noqa: PLC0415

    return load_settings().database_url


def _numbered(_context: object, _revision: object, directives: list[MigrationScript]) -> None:
    # The project's revisions are numbered, 0001 onwards, whoever writes one (`alembic
    # revision` or `app scaffold`); an id given with --rev-id is kept.
    for script in directives:
        if not str(script.rev_id).isdigit():
            script.rev_id = next_revision(config)


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    context.configure(
        process_revision_directives=_numbered,
        connection=connection,
        url=url,
        target_metadata=metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table.
        render_as_batch=True,
        compare_type=True,
        literal_binds=connection is None,
    )


def _run_sync(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        # Called from code that already holds a (sync-facing) connection.
        _run_sync(connection)
        return
    engine = create_async_engine(_url())
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run_sync)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    _configure(url=_url())
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
