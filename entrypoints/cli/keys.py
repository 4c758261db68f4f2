"""``app keys …``: the signing keys of asymmetric tokens (ALGORITHM=ES256 or EdDSA)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from application.signing_keys import (
    ListedKey,
    ListSigningKeys,
    Revocation,
    RevokeSigningKey,
    RotateSigningKeys,
)
from domain.signing_keys import SigningKey
from entrypoints.cli.runtime import fail, run
from entrypoints.services import Services

keys = typer.Typer(
    name="keys",
    help="The signing keys of ES256 and EdDSA tokens: list them, start a rotation, revoke"
    " a compromised one.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


@keys.command("list")
def list_keys(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line, for scripts.")
    ] = False,
) -> None:
    """List the signing keys in the order they sign: kid, algorithm, state (pending,
    active or retired, among the keys of its algorithm) and their dates, in UTC. Private
    parts are never shown; a revoked key is gone."""

    async def work(services: Services) -> list[ListedKey]:
        listed: list[ListedKey] = await services.get(ListSigningKeys)()
        return listed

    listed = run(ctx, work)
    if as_json:
        for item in listed:
            typer.echo(json.dumps(_json(item)))
        return
    if listed:
        typer.echo(_table(listed))
    typer.echo(f"{len(listed)} key{'' if len(listed) == 1 else 's'}.")


@keys.command()
def rotate(ctx: typer.Context) -> None:
    """Add a new signing key. It is published at once and starts signing after
    JWT_KEY_ACTIVATION_DELAY_SECONDS; the key it replaces is retired then, stays
    accepted until every token it signed has expired, and is deleted by the job runner
    after that. No live token stops working. Refused, with nothing stored, when
    SECRET_KEY cannot open the current key."""

    async def work(services: Services) -> SigningKey:
        key: SigningKey = await services.get(RotateSigningKeys)()
        return key

    key = run(ctx, work)
    typer.echo(f"New {key.algorithm} key {key.kid} starts signing at {_iso(key.activates_at)}.")


# A kid is base64url and may start with "-": taken as the kid, not as an unknown option.
@keys.command(context_settings={"ignore_unknown_options": True})
def revoke(
    ctx: typer.Context,
    kid: Annotated[str, typer.Argument(help="The key's kid, as `app keys list` shows it.")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm: the key's tokens stop working.")
    ] = False,
) -> None:
    """Revoke a key at once, for a compromise: it leaves the JWKS now, and every token
    it signed is refused within a minute on every replica. When it is the key that
    signs, a new key signs in its place at once. Needs --yes."""
    if not yes:
        fail("revoking a key ends every token it signed at once: confirm with --yes")

    async def work(services: Services) -> Revocation:
        done: Revocation = await services.get(RevokeSigningKey)(kid)
        return done

    done = run(ctx, work)
    revoked = done.revoked
    typer.echo(
        f"Revoked {revoked.algorithm} key {revoked.kid}: it has left the JWKS, and every"
        " replica refuses the tokens it signed within a minute."
    )
    if done.successor is not None:
        new = done.successor
        typer.echo(f"New {new.algorithm} key {new.kid} signs from now on, in its place.")


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def _json(item: ListedKey) -> dict[str, str | None]:
    key = item.key
    return {
        "kid": key.kid,
        "algorithm": key.algorithm,
        "state": item.state.value,
        "created_at": _iso(key.created_at),
        "activates_at": _iso(key.activates_at),
        "retired_at": _iso(key.retired_at),
        "delete_after": _iso(key.delete_after),
    }


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _table(items: list[ListedKey]) -> str:
    header = ("KID", "ALGORITHM", "STATE", "CREATED", "ACTIVATES", "RETIRED", "DELETABLE AFTER")
    rows = [
        (
            item.key.kid,
            item.key.algorithm,
            item.state.value,
            _when(item.key.created_at),
            _when(item.key.activates_at),
            _when(item.key.retired_at),
            _when(item.key.delete_after),
        )
        for item in items
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )
