"""``app tokens …``: housekeeping of refresh tokens and sessions."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from application.retention import PURGE_PAUSE_FACTOR, PurgeResult, PurgeTokens
from entrypoints.cli.runtime import run
from entrypoints.services import Services

tokens = typer.Typer(
    name="tokens",
    help="Housekeeping of refresh tokens and sessions.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


def on_terminal() -> bool:
    return sys.stdout.isatty()


@tokens.command()
def purge(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would be deleted.")
    ] = False,
    pause_factor: Annotated[
        float | None,
        typer.Option(
            "--pause-factor",
            min=0,
            max=100,
            help="Rest this many times each batch's duration before the next one; 0 runs"
            f" flat out. [default: TOKEN_PURGE_PAUSE_FACTOR, {PURGE_PAUSE_FACTOR:g}]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Delete refresh tokens past their expiry, then expired sessions left without any.

    Revoked and rotated tokens stay until they expire, so that the reuse of a stolen
    token is still detected. Rows go in bounded batches, each in its own short
    transaction, with a rest after each so that a large backlog leaves the database to
    the service's requests. The job runner does the same on a schedule.
    """

    async def work(services: Services) -> PurgeResult:
        purge_tokens = services.get(PurgeTokens)
        if dry_run or not on_terminal():
            result: PurgeResult = await purge_tokens(dry_run=dry_run, pause_factor=pause_factor)
            return result
        planned: PurgeResult = await purge_tokens(dry_run=True)
        with typer.progressbar(
            length=max(planned.tokens + planned.sessions, 1),
            label="Purging",
            file=sys.stderr,
        ) as bar:
            done: PurgeResult = await purge_tokens(
                on_progress=bar.update, pause_factor=pause_factor
            )
        return done

    result = run(ctx, work)
    counts = (
        f"{_count(result.tokens, 'expired refresh token')} and {_count(result.sessions, 'session')}"
    )
    if result.dry_run:
        typer.echo(f"Would delete {counts} (dry run: nothing was deleted).")
    else:
        typer.echo(f"Deleted {counts}.")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
