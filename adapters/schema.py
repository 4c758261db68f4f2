"""Where the database's schema stands against the code's migrations, for the readiness
probe.

Readiness is asked every few seconds by every replica, so this stays cheap: the code's
revisions are read once per process, from the migration scripts themselves (parsed,
not imported: the API process never loads Alembic, see ``adapters.migrations``); the
database is asked until its schema has been seen at the head, and never again after,
since a running process's schema does not go backwards.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from adapters.database import Database, is_unavailable
from domain.errors import ServiceUnavailable
from domain.ports import SchemaBehind, SchemaProbe

# The project's root: alembic.ini and migrations/ sit beside the packages, in a checkout
# as in the image (/app).
ROOT = Path(__file__).resolve().parent.parent
VERSIONS = ROOT / "migrations" / "versions"
# Alembic's own table of the revisions a database is at.
VERSION_TABLE = "alembic_version"


@dataclass(frozen=True, slots=True)
class CodeRevisions:
    """The revisions of the code's migration scripts: all of them, and the heads (those
    no other revision builds on)."""

    known: frozenset[str]
    heads: tuple[str, ...]


class InvalidMigrationScript(ValueError):
    """A migration script whose ``revision`` or ``down_revision`` is not a literal."""


@functools.cache
def code_revisions(versions: Path = VERSIONS) -> CodeRevisions:
    """The revisions of the scripts in ``versions``, as Alembic reads them (compared
    with Alembic's own reading in the tests)."""
    known: set[str] = set()
    built_on: set[str] = set()
    for script in sorted(versions.glob("*.py")):
        if script.name.startswith(("__init__", ".#")):
            continue  # skipped by Alembic too: a package marker, an editor's lock file
        names = _module_constants(script, ("revision", "down_revision"))
        revision = names.get("revision")
        if not isinstance(revision, str):
            raise InvalidMigrationScript(f"{script.name}: revision is not a string")
        known.add(revision)
        built_on.update(_revision_ids(names.get("down_revision"), script))
    return CodeRevisions(frozenset(known), tuple(sorted(known - built_on)))


def _module_constants(script: Path, names: tuple[str, ...]) -> dict[str, object]:
    found: dict[str, object] = {}
    for node in ast.parse(script.read_text(encoding="utf-8"), str(script)).body:
        targets: list[ast.expr]
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        elif isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in names:
                try:
                    found[target.id] = ast.literal_eval(value)
                except ValueError:
                    raise InvalidMigrationScript(
                        f"{script.name}: {target.id} is not a literal"
                    ) from None
    return found


def _revision_ids(value: object, script: Path) -> tuple[str, ...]:
    """``down_revision``: None (the first), one id, or several (a merge)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, tuple | list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise InvalidMigrationScript(f"{script.name}: down_revision is not a revision id")


def behind(current: tuple[str, ...], code: CodeRevisions) -> SchemaBehind | None:
    """Whether a database at ``current`` is behind the code. A revision the code does
    not know was made by a newer release: the schema is past the code's head."""
    if set(current) == set(code.heads):
        return None
    if current and not set(current) <= code.known:
        return None
    return SchemaBehind(current=tuple(sorted(current)), head=code.heads)


class DatabaseSchema(SchemaProbe):
    """The schema of the database behind ``database``, against ``versions``' scripts."""

    def __init__(self, database: Database, versions: Path = VERSIONS) -> None:
        self._database = database
        self._versions = versions
        self._at_head = False

    async def behind(self) -> SchemaBehind | None:
        if self._at_head:
            return None
        code = code_revisions(self._versions)
        lag = behind(await self._current(), code)
        self._at_head = lag is None
        return lag

    async def _current(self) -> tuple[str, ...]:
        try:
            async with self._database.engine.connect() as conn:
                return await conn.run_sync(_current_revisions)
        except Exception as exc:
            if is_unavailable(exc, connecting=True):
                raise ServiceUnavailable() from exc
            raise


def _current_revisions(conn: Connection) -> tuple[str, ...]:
    # Asked first: on SQLite a missing table is an OperationalError, which reads as
    # "the database is away".
    if not inspect(conn).has_table(VERSION_TABLE):
        return ()
    rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))  # noqa: S608
    return tuple(row[0] for row in rows)
