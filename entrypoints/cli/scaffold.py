"""``app scaffold resource NAME``: the files of a new resource, as the README's guide has
them (with get, rename and delete too), its migration, and one line in each explicit
list (use cases, routers, repositories)."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from enum import StrEnum
from importlib import resources
from pathlib import Path
from string import Template
from typing import Annotated

import typer

import entrypoints
from entrypoints.cli.runtime import fail, load_cli_settings, reported_errors, runtime_of

scaffold = typer.Typer(
    name="scaffold",
    help="Write the files of something new, in the project's own patterns.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

ROOT = Path(entrypoints.__file__).resolve().parent.parent
NAME = re.compile(r"[a-z][a-z0-9_]{1,30}")
# Names the project uses already, as modules, tables or route prefixes.
TAKEN = frozenset(
    {
        "users",
        "sessions",
        "refresh_tokens",
        "auth",
        "health",
        "admin",
        "tokens",
        "model",
        "orgs",
        "invitations",
        "scopes",
        "access_tokens",
    }
)


def _singular(plural: str) -> str | None:
    if plural.endswith("ies"):
        return plural[:-3] + "y"
    if plural.endswith("s") and not plural.endswith("ss"):
        return plural[:-1]
    return None


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


class Owner(StrEnum):
    """Who owns each of a resource's rows."""

    USER = "user"
    ORG = "org"


def files_for(
    names: str, name: str, max_per_owner: int | None = None, owner: str = "user"
) -> dict[Path, str]:
    """The files of the resource ``names`` (its singular ``name``), by path, owned by a
    user or by an organization (``owner``); with ``max_per_owner``, each owner has at
    most that many, and a race test proves it."""
    values = _values(names, name, max_per_owner, owner)
    org = owner == "org"
    templates = {
        f"domain/{names}.py": "domain",
        f"application/{names}.py": "org_application" if org else "application",
        f"adapters/{names}.py": "adapter",
        f"entrypoints/http/routes/{names}.py": "org_routes" if org else "routes",
        f"tests/unit/test_{names}.py": "unit_test",
        f"tests/contracts/test_{names}.py": "contract_test",
        f"tests/e2e/test_http_{names}.py": "org_e2e_test" if org else "e2e_test",
    }
    if max_per_owner is not None:
        templates[f"tests/integration/test_{names}_limit.py"] = "race_test"
    return {
        ROOT / path: _render(template, values, limited=max_per_owner is not None, owner=owner)
        for path, template in templates.items()
    }


def _render(template: str, values: dict[str, str], *, limited: bool, owner: str = "user") -> str:
    """The template with ``$name``s filled in and its sections chosen: the lines between
    ``# {limit}`` and the next ``# {plain}`` or ``# {end}`` are kept only for a resource
    with a limit per owner, those between ``# {plain}`` and ``# {end}`` only without;
    those between ``# {user}`` (or ``# {org}``) and the next owner marker or
    ``# {/owner}`` only for that kind of owner."""
    kept: list[str] = []
    section = owned = None
    for line in _template(template).splitlines(keepends=True):
        marker = line.strip()
        if marker in ("# {limit}", "# {plain}", "# {end}"):
            section = None if marker == "# {end}" else marker
            continue
        if marker in ("# {user}", "# {org}", "# {/owner}"):
            owned = None if marker == "# {/owner}" else marker[3:-1]
            continue
        if (section is None or (section == "# {limit}") == limited) and owned in (None, owner):
            kept.append(line)
    return Template("".join(kept)).substitute(values)


CONTAINER = "entrypoints/container.py"
ROUTES = "entrypoints/http/routes/__init__.py"
REPOSITORIES = "adapters/repositories.py"
OWN_MARK = "    # Resources of your own"
ROUTERS_END = ")"


def registrations(names: str, name: str) -> dict[Path, str]:
    """The three explicit lists a resource joins, as they read with it: its use cases'
    providers in ``UseCases``, its router in ``ROUTERS`` and its repository in
    ``REPOSITORIES``."""
    values = _values(names, name)
    container = (ROOT / CONTAINER).read_text()
    providers = _render("container", values, limited=False)
    imports = Template(
        "from application.$names import Create$Name, Delete$Name, Get$Name, List$Names,"
        " Rename$Name\n"
    ).substitute(values)
    container = _insert(container, "from application.users import", imports, before=True)
    container = _insert(container, OWN_MARK, providers, before=True)
    repositories = (ROOT / REPOSITORIES).read_text()
    repositories = _insert(
        repositories,
        "from domain.",
        Template(
            "from adapters.$names import Sql${Name}Repository\n"
            "from domain.$names import ${Name}Repository\n"
        ).substitute(values),
        before=True,
        last=True,
    )
    repositories = _insert(
        repositories,
        OWN_MARK,
        Template("    ${Name}Repository: Sql${Name}Repository,\n").substitute(values),
        before=True,
    )
    routes = (ROOT / ROUTES).read_text()
    imported = "from entrypoints.http.routes import "
    if routes.count(imported) != 1:
        raise ScaffoldError(f"cannot find where to add the resource ({imported.strip()!r})")
    # One line, or a parenthesised list once the names outgrow one: the name goes first,
    # and ruff (``_format``) sorts it into place.
    if f"{imported}(\n" in routes:
        routes = routes.replace(f"{imported}(\n", f"{imported}(\n    {names},\n")
    else:
        routes = routes.replace(imported, f"{imported}{names}, ")
    routes = _insert(routes, ROUTERS_END, f"    {names}.router,\n", before=True, last=True)
    return {ROOT / CONTAINER: container, ROOT / ROUTES: routes, ROOT / REPOSITORIES: repositories}


def _insert(text: str, anchor: str, added: str, *, before: bool, last: bool = False) -> str:
    """``added`` before (or after) the one line that starts with ``anchor`` (the last
    such line with ``last``); a file whose anchor moved is an error, not a guess."""
    lines = text.splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if line.startswith(anchor)]
    if not hits or (len(hits) > 1 and not last):
        raise ScaffoldError(f"cannot find where to add the resource ({anchor.strip()!r})")
    at = hits[-1] if before else hits[-1] + 1
    return "".join([*lines[:at], added, *lines[at:]])


def _defined_table(names: str) -> Path | None:
    """The adapter module that defines a table of this name already, if one does."""
    defined = re.compile(rf"""Table\(\s*["']{names}["']""")
    for module in sorted((ROOT / "adapters").glob("*.py")):
        if defined.search(module.read_text()):
            return module
    return None


class ScaffoldError(Exception):
    """The project is not as the scaffold expects it; nothing was written."""


def _values(
    names: str, name: str, max_per_owner: int | None = None, owner: str = "user"
) -> dict[str, str]:
    org = owner == "org"
    return {
        "name": name,
        "names": names,
        "Name": _camel(name),
        "Names": _camel(names),
        "NAMES": names.upper(),
        "max_per_owner": str(max_per_owner),
        # What owns it: the table its owner_id refers to, in words and in SQL.
        "owner_table": "orgs" if org else "users",
        "an_owner": "an organization" if org else "a user",
        "An_owner": "An organization" if org else "A user",
    }


def _template(name: str) -> str:
    """A template of ``entrypoints/cli/templates`` (``string.Template``: ``$name``,
    ``$names``, ``$Name``, ``$Names``, ``$NAMES``)."""
    folder = resources.files("entrypoints.cli").joinpath("templates")
    return folder.joinpath(f"{name}.py.tmpl").read_text(encoding="utf-8")


@scaffold.command()
def resource(
    ctx: typer.Context,
    names: Annotated[
        str,
        typer.Argument(
            metavar="NAME",
            help="The resource, plural and snake_case: `notes`, `api_keys`.",
            show_default=False,
        ),
    ],
    singular: Annotated[
        str | None,
        typer.Option(
            help="Its singular, when it is not NAME less its final s.", show_default=False
        ),
    ] = None,
    migration: Annotated[
        bool,
        typer.Option(
            "--migration/--no-migration",
            help="Generate its migration (Alembic's autogenerate against DATABASE_URL).",
        ),
    ] = True,
    max_per_owner: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=1_000_000,
            help="At most this many per owner, held under concurrency by the database"
            " (with a PostgreSQL race test).",
            show_default=False,
        ),
    ] = None,
    owner: Annotated[
        Owner,
        typer.Option(
            help="Who owns each one: `user` (under /api/v1/NAME/, the caller's own) or"
            " `org` (under /api/v1/orgs/{slug}/NAME/: members read, admins and owners"
            " write).",
        ),
    ] = Owner.USER,
) -> None:
    """Write a resource that each user, or each organization, owns (an entity with a
    name): the domain module with its port, the use cases (create, get, list, rename,
    delete), the table and the repository, the routes, unit, contract and end-to-end
    tests, and the migration; and add its use cases to `entrypoints/container.py`, its
    router to `entrypoints/http/routes/__init__.py` and its repository to
    `adapters/repositories.py`. On any failure nothing is left changed."""
    name = _checked(names, singular)
    files = files_for(names, name, max_per_owner, owner.value)
    existing = [path for path in files if path.exists()]
    if existing:
        fail(f"{existing[0].relative_to(ROOT)} exists already: nothing was written")
    if table := _defined_table(names):
        fail(f"{table.relative_to(ROOT)} defines a table {names!r} already: nothing was written")
    try:
        edited = registrations(names, name)
    except ScaffoldError as exc:
        fail(str(exc))

    # All or nothing: on any failure the tree is left as it was found.
    originals = {path: path.read_text() for path in edited}
    written: list[Path] = []
    try:
        for path, text in files.items():
            path.write_text(text)
            written.append(path)
            typer.echo(f"created {path.relative_to(ROOT)}")
        for path, text in edited.items():
            path.write_text(text)
            typer.echo(f"added {names} to {path.relative_to(ROOT)}")
        if migration:
            written.append(_migration(ctx, names))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        for path, text in originals.items():
            path.write_text(text)
        raise
    _format([*written, *edited])
    where = f"/api/v1/orgs/{{slug}}/{names}/" if owner is Owner.ORG else f"/api/v1/{names}/"
    typer.echo(
        f"Next: read the migration, `app db upgrade`, then `make test`; the routes are under"
        f" {where}."
    )


def _checked(names: str, singular: str | None) -> str:
    """The resource's singular, once its names are fit for a new resource."""
    name = singular or _singular(names)
    if not NAME.fullmatch(names) or (name is not None and not NAME.fullmatch(name)):
        fail(f"{names!r}: use lowercase letters, digits and '_', starting with a letter")
    if name is None or name == names:
        fail(f"{names!r}: give its singular with --singular")
    if names in TAKEN or name in TAKEN:
        fail(f"{names!r}: the project has that name already")
    if not (ROOT / "migrations").is_dir() or not (ROOT / "tests").is_dir():
        fail(f"scaffolding needs a checkout of the project; {ROOT} is not one")
    return name


def _migration(ctx: typer.Context, names: str) -> Path:
    # This process loaded the list of repositories before the scaffold added to it: the
    # new table joins the metadata that Alembic compares as its module is imported.
    importlib.invalidate_caches()
    importlib.import_module(f"adapters.{names}")
    runtime = runtime_of(ctx)
    url = load_cli_settings().database_url
    with reported_errors(url, runtime.is_unavailable):
        revision = runtime.migrations.autogenerate(url, f"add {names}")
    typer.echo(f"created {revision.relative_to(ROOT)}")
    return revision


def _format(paths: list[Path]) -> None:
    """Sort the imports (a resource's module sorts among the others by its name) and
    wrap long lines, as ``make format`` would: with ruff, when the development tools
    are installed beside this interpreter."""
    ruff = Path(sys.executable).parent / "ruff"
    if not ruff.exists():
        return
    files = [str(path) for path in paths]
    # ruff beside this interpreter, on the files just written.
    for args in (["check", "--fix", "--select", "I", "--quiet"], ["format", "--quiet"]):
        subprocess.run([str(ruff), *args, *files], check=False, cwd=ROOT)  # noqa: S603
