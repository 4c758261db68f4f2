"""``app audit …``: the audit trail, newest first."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from application.admin import GetUser
from application.audit import ListAuditEvents
from domain.audit import Action, AuditEvent, AuditFilter
from domain.model import MAX_PAGE_SIZE, Page, PageRequest, User
from entrypoints.cli.runtime import run
from entrypoints.presenters import AuditEvent as EventBody
from entrypoints.services import Services

audit = typer.Typer(
    name="audit",
    help="The audit trail: who changed which account, and when.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
COLUMNS = ("ID", "WHEN (UTC)", "ACTION", "ACTOR", "TARGET", "DETAILS")


@audit.command("list")
def list_events(
    ctx: typer.Context,
    user: Annotated[
        str | None,
        typer.Option(
            "--user",
            help="Only events about this user: an id (also of a deleted account), an email"
            " or a username.",
            show_default=False,
        ),
    ] = None,
    action: Annotated[
        Action | None,
        typer.Option(help="Only this action.", show_default=False),
    ] = None,
    org: Annotated[
        int | None,
        typer.Option(
            "--org", min=1, help="Only events in this organization (its id).", show_default=False
        ),
    ] = None,
    page: Annotated[int, typer.Option(min=1, help="The page to show.")] = 1,
    size: Annotated[int, typer.Option(min=1, max=MAX_PAGE_SIZE, help="Events per page.")] = 20,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line, for scripts.")
    ] = False,
) -> None:
    """The audit events, newest first."""

    async def work(services: Services) -> Page[AuditEvent]:
        target = None
        if user is not None and user.strip().isascii() and user.strip().isdigit():
            target = int(user)  # the trail outlives the account: no lookup
        elif user is not None:
            found: User = await services.get(GetUser)(user)
            target = found.id
        where = AuditFilter(
            action=action.value if action else None, target_user_id=target, org_id=org
        )
        events: Page[AuditEvent] = await services.get(ListAuditEvents)(
            where, PageRequest(page=page, size=size)
        )
        return events

    found = run(ctx, work)
    if as_json:
        for event in found.items:
            typer.echo(json.dumps(EventBody.of_event(event), ensure_ascii=False))
        return
    if found.items:
        rows = [COLUMNS, *(_row(event) for event in found.items)]
        widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
        for row in rows:
            typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    plural = "event" if found.total == 1 else "events"
    typer.echo(f"Page {found.page} of {max(found.pages, 1)}, {found.total} {plural} in all.")


def _row(event: AuditEvent) -> tuple[str, ...]:
    actor = event.actor_type.value
    if event.actor_id is not None:
        actor += f" {event.actor_id}"
    elif "os_user" in event.details:
        actor += f" {event.details['os_user']}"
    details = {k: v for k, v in event.details.items() if k != "os_user"}
    return (
        str(event.id),
        event.occurred_at.strftime("%Y-%m-%d %H:%M:%S"),
        str(event.action),
        actor,
        str(event.target_user_id or "-"),
        json.dumps(details, ensure_ascii=False) if details else "",
    )
