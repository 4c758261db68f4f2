"""``app db …``: the schema migrations (Alembic) on ``DATABASE_URL``."""

from __future__ import annotations

from typing import Annotated

import typer

from entrypoints.cli.runtime import Migrations, load_cli_settings, reported_errors, runtime_of

db = typer.Typer(
    name="db",
    help="Migrate the database schema on DATABASE_URL.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


@db.command()
def upgrade(
    ctx: typer.Context,
    revision: Annotated[
        str,
        typer.Argument(
            metavar="REVISION", help="The revision to upgrade to; the latest by default."
        ),
    ] = "head",
) -> None:
    """Apply the migrations up to REVISION (the latest by default)."""
    _migrate(ctx, "upgrade", revision, "upgraded")


@db.command()
def downgrade(
    ctx: typer.Context,
    revision: Annotated[
        str,
        typer.Argument(
            metavar="REVISION",
            help='The revision to go back to: an id, "-1" for one step, or "base" to undo'
            " every migration (this drops every table and its data).",
            show_default=False,
        ),
    ],
) -> None:
    """Revert the migrations down to REVISION."""
    _migrate(ctx, "downgrade", revision, "downgraded")


def _migrate(ctx: typer.Context, step: str, revision: str, done: str) -> None:
    runtime = runtime_of(ctx)
    migrations: Migrations = runtime.migrations
    url = load_cli_settings().database_url
    with reported_errors(url, runtime.is_unavailable):
        before = migrations.current(url)
        getattr(migrations, step)(url, revision)
        after = migrations.current(url)
        heads = migrations.head_revisions(url)
    if before == after:
        typer.echo(f"Database already at {_describe(after, heads)}.")
    else:
        typer.echo(f"Database {done} from {_describe(before, heads)} to {_describe(after, heads)}.")


@db.command()
def current(ctx: typer.Context) -> None:
    """Show the revision the database is at, and whether it is the latest."""
    runtime = runtime_of(ctx)
    migrations = runtime.migrations
    url = load_cli_settings().database_url
    with reported_errors(url, runtime.is_unavailable):
        revisions = migrations.current(url)
        heads = migrations.head_revisions(url)
    typer.echo(_describe(revisions, heads))
    if set(revisions) != set(heads):
        typer.echo("Not the latest revision of this code: run `app db upgrade`.", err=True)


def _describe(revisions: tuple[str, ...], heads: tuple[str, ...]) -> str:
    if not revisions:
        return "base (no migration applied)"
    return ", ".join(f"{rev} (latest)" if rev in heads else rev for rev in revisions)
