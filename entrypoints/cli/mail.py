"""``app outbox …`` and ``app mail …``: the mail outbox as the operator sees it."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from application.outbox import ListOutbox, RetryOutbox, SendTestMail
from domain.mail import mask_address
from domain.outbox import OutboxMessage, Status
from entrypoints.cli.runtime import fail, run
from entrypoints.services import Services

outbox = typer.Typer(
    name="outbox",
    help="Inspect the mail outbox, and put dead messages back in the queue.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
mail = typer.Typer(
    name="mail",
    help="Check that mail goes out.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
COLUMNS = ("id", "template", "to", "status", "attempts", "created", "next_attempt", "error")


@outbox.command("list")
def list_messages(
    ctx: typer.Context,
    status: Annotated[
        Status | None, typer.Option(help="Only messages of this status.", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many, newest first.")] = 50,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line, for scripts.")
    ] = False,
) -> None:
    """The newest messages of the outbox. Addresses are shown masked; no message shows
    a token or a link (the relay makes those when it sends)."""

    async def work(services: Services) -> list[OutboxMessage]:
        found: list[OutboxMessage] = await services.get(ListOutbox)(status, limit)
        return found

    rows = [_row(message) for message in run(ctx, work)]
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    if not rows:
        typer.echo("The outbox is empty." if status is None else f"No {status.value} messages.")
        return
    table = [[str(row[name] if row[name] is not None else "") for name in COLUMNS] for row in rows]
    widths = [max(len(name), *(len(line[i]) for line in table)) for i, name in enumerate(COLUMNS)]
    typer.echo("  ".join(name.ljust(w) for name, w in zip(COLUMNS, widths, strict=True)).rstrip())
    for line in table:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def _row(message: OutboxMessage) -> dict[str, object]:
    pending = message.status is Status.PENDING
    return {
        "id": message.id,
        "template": message.template.value,
        "to": mask_address(message.recipient),
        "status": message.status.value,
        "attempts": message.attempts,
        "created": message.created_at.isoformat(timespec="seconds"),
        "next_attempt": message.next_attempt_at.isoformat(timespec="seconds") if pending else None,
        "error": message.last_error,
    }


@outbox.command()
def retry(
    ctx: typer.Context,
    message_ids: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="ID...", help="The dead messages to send again.", show_default=False
        ),
    ] = None,
    dead: Annotated[bool, typer.Option("--dead", help="Every dead message.")] = False,
) -> None:
    """Put dead messages back in the queue, with a fresh set of attempts."""
    if bool(message_ids) == dead:
        fail("name the messages (ID...) or pass --dead, not both")

    async def work(services: Services) -> int:
        revived: int = await services.get(RetryOutbox)(None if dead else list(message_ids or []))
        return revived

    revived = run(ctx, work)
    typer.echo(f"Queued {revived} message{'' if revived == 1 else 's'} again.")


@mail.command("send-test")
def send_test(
    ctx: typer.Context,
    to: Annotated[str, typer.Option(help="The address to send the test message to.")],
) -> None:
    """Send one test message through the configured MAIL_BACKEND at once (not through
    the outbox) and say whether it went."""

    async def work(services: Services) -> str:
        message_id: str = await services.get(SendTestMail)(to)
        return message_id

    message_id = run(ctx, work)
    typer.echo(f"Sent a test message to {to.strip()} (id {message_id}).")
