"""adapters.schema: the code's revisions read from the migration scripts as Alembic reads
them, and where a real database's schema stands against them (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from adapters import migrations
from adapters.database import Database
from adapters.schema import (
    VERSIONS,
    CodeRevisions,
    DatabaseSchema,
    InvalidMigrationScript,
    behind,
    code_revisions,
)
from domain.errors import ServiceUnavailable
from domain.ports import SchemaBehind
from tests.conftest import Postgres

SCRIPT = '''"""{message}"""

revision{annotation} = {revision!r}
down_revision{annotation} = {down!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
'''


def write_scripts(folder: Path, graph: dict[str, object], annotated: bool = True) -> Path:
    """A versions folder of empty revisions: ``graph`` maps each to its down_revision."""
    versions = folder / "versions"
    versions.mkdir(parents=True)
    for revision, down in graph.items():
        text = SCRIPT.format(
            message=f"step {revision}",
            revision=revision,
            down=down,
            annotation=": str" if annotated else "",
        )
        (versions / f"{revision}_step.py").write_text(text)
    return versions


def alembic_reading(versions: Path) -> CodeRevisions:
    scripts = ScriptDirectory(str(versions.parent))
    known = frozenset(script.revision for script in scripts.walk_revisions("base", "heads"))
    return CodeRevisions(known, tuple(sorted(scripts.get_heads())))


def test_the_project_s_revisions_are_alembic_s() -> None:
    assert code_revisions() == alembic_reading(VERSIONS)
    assert code_revisions().heads


@pytest.mark.parametrize(
    "graph",
    [
        {"a1": None, "b2": "a1", "c3": "b2"},
        # Two branches, then a merge.
        {"a1": None, "b2": "a1", "c3": "a1", "d4": ("b2", "c3")},
        # Two branches left open: two heads.
        {"a1": None, "b2": "a1", "c3": "a1"},
    ],
)
def test_branches_and_merges_read_as_alembic_reads_them(
    tmp_path: Path, graph: dict[str, object]
) -> None:
    versions = write_scripts(tmp_path, graph, annotated=len(graph) % 2 == 0)
    (versions / "__init__.py").write_text("")  # not a script, for Alembic either

    assert code_revisions(versions) == alembic_reading(versions)


def test_a_revision_that_is_not_a_literal_is_refused(tmp_path: Path) -> None:
    versions = write_scripts(tmp_path, {"a1": None})
    script = versions / "a1_step.py"
    source = script.read_text().replace("down_revision: str = None", "down_revision = f()")
    script.write_text(source)

    with pytest.raises(InvalidMigrationScript, match=r"a1_step\.py: down_revision"):
        code_revisions(versions)


def test_a_module_without_a_revision_is_refused_as_alembic_refuses_it(tmp_path: Path) -> None:
    versions = write_scripts(tmp_path, {"a1": None})
    (versions / "helpers.py").write_text("SHARED = 1\n")

    with pytest.raises(InvalidMigrationScript, match=r"helpers\.py: revision"):
        code_revisions(versions)


CODE = CodeRevisions(frozenset({"0001", "0002", "0003"}), ("0003",))


@pytest.mark.parametrize(
    ("current", "lag"),
    [
        ((), SchemaBehind((), ("0003",))),
        (("0002",), SchemaBehind(("0002",), ("0003",))),
        (("0003",), None),
        # A revision this code does not know: a newer release has migrated.
        (("0004",), None),
    ],
)
def test_a_schema_is_behind_only_at_an_older_revision_the_code_knows(
    current: tuple[str, ...], lag: SchemaBehind | None
) -> None:
    assert behind(current, CODE) == lag


def test_with_no_migrations_at_all_an_empty_database_is_at_the_head() -> None:
    assert behind((), CodeRevisions(frozenset(), ())) is None


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def fresh_url(
    request: pytest.FixtureRequest, postgres: Postgres, tmp_path: Path
) -> AsyncIterator[str]:
    """The URL of an empty database that no migration has touched."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    else:
        yield await postgres.new_database(migrated=False)


async def test_the_probe_follows_the_migrations_until_the_head_then_asks_no_more(
    fresh_url: str,
) -> None:
    head = code_revisions().heads
    database = Database(fresh_url)
    try:
        probe = DatabaseSchema(database)
        assert await probe.behind() == SchemaBehind((), head)

        await asyncio.to_thread(migrations.upgrade, fresh_url, "0001")
        assert await probe.behind() == SchemaBehind(("0001",), head)

        await asyncio.to_thread(migrations.upgrade, fresh_url)
        assert await probe.behind() is None

        # Once at the head it is not asked again: a schema never goes backwards under a
        # running process (here it does, to show that nothing reads it any more).
        await asyncio.to_thread(migrations.downgrade, fresh_url, "0001")
        assert await probe.behind() is None
        assert await DatabaseSchema(database).behind() == SchemaBehind(("0001",), head)
    finally:
        await database.dispose()


async def test_an_unreachable_database_is_service_unavailable(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/app.db")
    try:
        with pytest.raises(ServiceUnavailable):
            await DatabaseSchema(database).behind()
    finally:
        await database.dispose()
