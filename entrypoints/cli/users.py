"""``app users …``: accounts, as the operator sees them."""

from __future__ import annotations

import json
import sys
from datetime import UTC
from typing import Annotated

import typer

from application.admin import (
    GetUser,
    QueuePasswordReset,
    SetActive,
    SetPassword,
    UpdateUser,
    UserChanges,
)
from application.mfa import ResetMfa
from application.users import ListUsers, NewUser, RegisterUser
from domain.model import MAX_PAGE_SIZE, Page, PageRequest, User
from entrypoints.cli.runtime import fail, run
from entrypoints.presenters import User as UserBody
from entrypoints.services import Services

users = typer.Typer(
    name="users",
    help="Create, list, activate and deactivate users, set their passwords, make them"
    " superusers and reset their second factors.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

UserRef = Annotated[
    str,
    typer.Argument(metavar="USER", help="The user's id, email or username.", show_default=False),
]
NewPassword = Annotated[
    str | None,
    typer.Option(
        "--password",
        help="The new password. Leave it out to be prompted (hidden, typed twice), which"
        " keeps it out of the shell history and the process list.",
        show_default=False,
    ),
]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from the first line of standard input, for scripts:"
        " `printf '%s\\n' \"$PASSWORD\" | app users …`.",
    ),
]


def read_password(given: str | None, from_stdin: bool, prompt: str) -> str:
    """The password from ``--password``, ``--password-stdin`` or a hidden prompt."""
    if from_stdin:
        if given is not None:
            fail("use either --password or --password-stdin, not both")
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
        if not password:
            fail("--password-stdin: standard input holds no password")
        return password
    return given if given is not None else prompt_password(prompt)


def prompt_password(text: str) -> str:
    # On stderr, so that stdout carries the result alone.
    password: str = typer.prompt(
        text, hide_input=True, confirmation_prompt="Repeat the password", err=True
    )
    return password


@users.command()
def create(
    ctx: typer.Context,
    email: Annotated[str, typer.Option(help="The email address (stored lower-cased).")],
    username: Annotated[str, typer.Option(help="3-32 letters, digits, '_', '.' or '-'; unique.")],
    password: NewPassword = None,
    password_stdin: PasswordStdin = False,
    superuser: Annotated[bool, typer.Option("--superuser", help="Make a superuser.")] = False,
    full_name: Annotated[
        str | None, typer.Option(help="The full name, up to 100 characters.", show_default=False)
    ] = None,
) -> None:
    """Create a user and print the new user's id."""
    new = NewUser(
        email=email,
        username=username,
        password=read_password(password, password_stdin, "Password"),
        full_name=full_name,
        is_superuser=superuser,
    )

    async def work(services: Services) -> User:
        user: User = await services.get(RegisterUser)(new)
        return user

    typer.echo(run(ctx, work).id)


@users.command("list")
def list_users(
    ctx: typer.Context,
    page: Annotated[int, typer.Option(min=1, help="The page to show.")] = 1,
    size: Annotated[int, typer.Option(min=1, max=MAX_PAGE_SIZE, help="Users per page.")] = 20,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line, for scripts.")
    ] = False,
) -> None:
    """List users by id, inactive ones included."""

    async def work(services: Services) -> Page[User]:
        found: Page[User] = await services.get(ListUsers)(
            PageRequest(page=page, size=size), include_inactive=True
        )
        return found

    found = run(ctx, work)
    if as_json:
        for user in found.items:
            typer.echo(json.dumps(UserBody.of(user), ensure_ascii=False))
        return
    if found.items:
        typer.echo(_table(found.items))
    plural = "user" if found.total == 1 else "users"
    typer.echo(f"Page {found.page} of {max(found.pages, 1)}, {found.total} {plural} in all.")


@users.command()
def deactivate(ctx: typer.Context, user: UserRef) -> None:
    """Deactivate a user: they can no longer log in, and all their sessions end."""

    async def work(services: Services) -> User:
        found: User = await services.get(SetActive)(user, active=False)
        return found

    typer.echo(f"User {_name(run(ctx, work))} is inactive; all their sessions are ended.")


@users.command()
def activate(ctx: typer.Context, user: UserRef) -> None:
    """Activate a user again: they can log in."""

    async def work(services: Services) -> User:
        found: User = await services.get(SetActive)(user, active=True)
        return found

    typer.echo(f"User {_name(run(ctx, work))} is active.")


@users.command("grant-superuser")
def grant_superuser(ctx: typer.Context, user: UserRef) -> None:
    """Make a user a superuser: they may use the admin API."""

    async def work(services: Services) -> User:
        changed: User = await services.get(UpdateUser)(user, UserChanges(is_superuser=True))
        return changed

    typer.echo(f"User {_name(run(ctx, work))} is a superuser.")


@users.command("revoke-superuser")
def revoke_superuser(ctx: typer.Context, user: UserRef) -> None:
    """Take a user's superuser access away and end all their sessions. The last active
    superuser keeps it: make another one first."""

    async def work(services: Services) -> User:
        changed: User = await services.get(UpdateUser)(user, UserChanges(is_superuser=False))
        return changed

    typer.echo(
        f"User {_name(run(ctx, work))} is no longer a superuser; all their sessions are ended."
    )


@users.command("send-password-reset")
def send_password_reset(ctx: typer.Context, user: UserRef) -> None:
    """Mail a user a password reset link (through the outbox, as the admin API does)."""

    async def work(services: Services) -> User:
        found: User = await services.get(QueuePasswordReset)(user)
        return found

    typer.echo(f"A password reset link for user {_name(run(ctx, work))} is queued.")


@users.command("set-password")
def set_password(
    ctx: typer.Context,
    user: UserRef,
    password: NewPassword = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Set a user's password and end all their sessions."""

    async def work(services: Services) -> User:
        # Look the user up first, so that nobody types a password for a typo.
        found: User = await services.get(GetUser)(user)
        new_password = read_password(password, password_stdin, f"New password for {found.username}")
        changed: User = await services.get(SetPassword)(str(found.id), new_password)
        return changed

    typer.echo(f"Password of user {_name(run(ctx, work))} set; all their sessions are ended.")


@users.command("reset-mfa")
def reset_mfa(ctx: typer.Context, user: UserRef) -> None:
    """Remove every second factor of a user who lost them (TOTP, passkeys, recovery
    codes), end all their sessions and mail them a notice, as the admin API does."""

    async def work(services: Services) -> User:
        found: User = await services.get(ResetMfa)(user)
        return found

    typer.echo(
        f"Every second factor of user {_name(run(ctx, work))} is removed; all their sessions"
        " are ended. They log in with their password alone, and can set up a new factor."
    )


def _name(user: User) -> str:
    return f"{user.username} (id {user.id})"


def _table(items: list[User]) -> str:
    header = (
        "ID",
        "USERNAME",
        "EMAIL",
        "FULL NAME",
        "ACTIVE",
        "SUPERUSER",
        "VERIFIED",
        "CREATED (UTC)",
    )
    rows = [
        (
            str(user.id),
            user.username,
            user.email,
            _printable(user.full_name or "-"),
            "yes" if user.is_active else "no",
            "yes" if user.is_superuser else "no",
            "yes" if user.is_verified else "no",
            user.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
        )
        for user in items
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )


def _printable(text: str) -> str:
    # A name is free text: no line break or tab of it may bend the table.
    return "".join(char if char.isprintable() else " " for char in text)
