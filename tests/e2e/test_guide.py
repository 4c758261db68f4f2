"""The README's "How to add a new resource" guide, followed to the letter on a copy of
the project: the migration is generated, the new unit test passes, the layers hold, and
the new endpoints work."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.e2e.guide import steps

ROOT = Path(__file__).resolve().parents[2]
COPIED = [
    "domain",
    "application",
    "adapters",
    "entrypoints",
    "migrations",
    "alembic.ini",
    "pyproject.toml",
    "scripts",
]
TEST_FILES = [
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/fakes.py",
    "tests/unit/__init__.py",
    "tests/contracts/__init__.py",
    "tests/contracts/conftest.py",
    "tests/contracts/builders.py",
    "tests/integration/__init__.py",
    "tests/integration/builders.py",
]

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import asyncio, os, httpx
    from dependency_injector import providers
    from adapters.hasher import Argon2Hasher
    from entrypoints.container import build_services
    from entrypoints.http.app import create_app
    from entrypoints.settings import Settings

    async def main() -> None:
        settings = Settings(database_url=os.environ["DATABASE_URL"], environment="test",
                            secret_key="k" * 64, rate_limit_enabled=False)
        services = build_services(settings)
        services.container.adapters.hasher.override(
            providers.Singleton(Argon2Hasher, time_cost=1, memory_cost=1024))
        app = create_app(settings, services)
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=transport, base_url="http://test"
        ) as client:
            user = {"email": "ada@example.com", "username": "ada", "password": "correct horse 1"}
            assert (await client.post("/api/v1/users/", json=user)).status_code == 201
            login = await client.post("/api/v1/auth/login", json={
                "username": "ada", "password": "correct horse 1"})
            auth = {"Authorization": "Bearer " + login.json()["access_token"]}
            created = await client.post("/api/v1/projects/", json={"name": "Apollo"}, headers=auth)
            assert created.status_code == 201, created.text
            blank = await client.post("/api/v1/projects/", json={"name": " "}, headers=auth)
            assert blank.status_code == 422 and blank.json()["code"] == "validation_error"
            for number in range(99):
                more = {"name": f"Project {number}"}
                assert (await client.post("/api/v1/projects/", json=more, headers=auth)).is_success
            over = await client.post("/api/v1/projects/", json={"name": "Over"}, headers=auth)
            assert over.status_code == 409 and over.json()["code"] == "project_limit", over.text
            assert (await client.get("/api/v1/projects/")).status_code == 401
            listed = await client.get("/api/v1/projects/", headers=auth)
            assert [p["name"] for p in listed.json()][:2] == ["Apollo", "Project 0"], listed.text
            schema = (await client.get("/openapi.json")).json()
            create = schema["paths"]["/api/v1/projects/"]["post"]
            assert "409" in create["responses"]
        print("guide ok")

    asyncio.run(main())
    """
)


def _copy_project(target: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)
    for name in TEST_FILES:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)


def _project(tmp_path: Path, *extra_files: str) -> tuple[Path, dict[str, str]]:
    """A copy of the project in ``tmp_path`` and the environment to run things in it."""
    project = tmp_path / "project"
    project.mkdir()
    _copy_project(project)
    for name in extra_files:
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, project / name)
    env = {
        **os.environ,
        "PYTHONPATH": str(project),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'project.db'}",
        "ENVIRONMENT": "test",
    }
    env.pop("COVERAGE_PROCESS_START", None)
    return project, env


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_readme_guide_adds_a_working_resource(tmp_path: Path) -> None:
    project, env = _project(tmp_path)
    guide = steps((ROOT / "README.md").read_text())
    created = [step for step in guide if step.spec.startswith("new ")]
    edited = [step.spec for step in guide if not step.spec.startswith("new ")]
    # Seven files in all (these six and the generated migration), and the three lists.
    assert len(created) == 6, [step.spec for step in created]
    assert {spec.split(",")[0] for spec in edited} == {
        "in entrypoints/container.py",
        "in entrypoints/http/routes/__init__.py",
        "in adapters/repositories.py",
    }, edited
    for step in guide:
        step.apply(project)

    bin_dir = Path(sys.executable).parent
    python = sys.executable
    _run([python, "-m", "alembic", "upgrade", "head"], project, env)
    _run(
        [python, "-m", "alembic", "revision", "--autogenerate", "-m", "add projects"], project, env
    )
    generated = list((project / "migrations" / "versions").glob("*add_projects.py"))
    assert len(generated) == 1
    # Numbered like the project's own, even when written by `alembic revision`.
    number = f"{len(list(ROOT.glob('migrations/versions/*.py'))) + 1:04d}"
    assert f"Revision ID: {number}\n" in generated[0].read_text()
    assert "create_table('projects'" in generated[0].read_text()
    _run([python, "-m", "alembic", "upgrade", "head"], project, env)

    _run(
        [
            python,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/unit/test_projects.py",
            "tests/contracts/test_projects.py",
        ],
        project,
        env,
    )
    _run([str(bin_dir / "lint-imports")], project, env)
    new_files = [step.spec.removeprefix("new ") for step in created]
    _run([str(bin_dir / "ruff"), "check", *new_files], project, env)
    _run([str(bin_dir / "ruff"), "format", "--check", *new_files], project, env)
    assert "guide ok" in _run([python, "-c", SCRIPT], project, env)


SCAFFOLD_TEST_FILES = [
    "tests/conftest.py",
    "tests/e2e/__init__.py",
    "tests/e2e/conftest.py",
    "tests/e2e/cli_fixtures.py",
    "tests/e2e/test_schema.py",
    "tests/forged.py",
    "tests/contracts/__init__.py",
    "tests/contracts/conftest.py",
    "tests/contracts/builders.py",
    "tests/integration/__init__.py",
    "tests/integration/conftest.py",
    "tests/integration/builders.py",
]
# The explicit lists a resource joins, and what each gains.
LISTS = {
    "entrypoints/container.py": "providers.Factory(CreateTask",
    "entrypoints/http/routes/__init__.py": "tasks.router,",
    "adapters/repositories.py": "TaskRepository: SqlTaskRepository,",
}


def test_the_scaffold_writes_a_resource_with_a_limit_that_passes_lint_and_the_tests(
    tmp_path: Path,
) -> None:
    project, env = _project(tmp_path, *SCAFFOLD_TEST_FILES)
    app = [sys.executable, "-c", "from entrypoints.console import main; main()"]

    out = _run([*app, "scaffold", "resource", "tasks", "--max-per-owner", "3"], project, env)
    written = [line.removeprefix("created ") for line in out.splitlines() if "created" in line]
    # Five modules, four tests (unit, contract, race, end-to-end) and the migration.
    assert len(written) == 9, out
    assert "tests/integration/test_tasks_limit.py" in written
    assert 'create_table(\n        "tasks"' in (project / written[-1]).read_text()
    # Numbered like the project's own migrations, after the last of them.
    assert (
        Path(written[-1]).name.split("_")[1]
        == f"{len(list(ROOT.glob('migrations/versions/*.py'))) + 1:04d}"
    )
    # One line in each explicit list: who builds CreateTask, which routers are served,
    # which adapter serves the port.
    for path, line in LISTS.items():
        assert line in (project / path).read_text(), path
    assert "MAX_TASKS_PER_OWNER = 3" in (project / "domain/tasks.py").read_text()
    _upgrade_lint_and_test(project, env, written)


def test_the_scaffold_writes_an_organizations_resource_that_passes_lint_and_the_tests(
    tmp_path: Path,
) -> None:
    project, env = _project(tmp_path, *SCAFFOLD_TEST_FILES)
    app = [sys.executable, "-c", "from entrypoints.console import main; main()"]

    out = _run(
        [*app, "scaffold", "resource", "tasks", "--owner", "org", "--max-per-owner", "3"],
        project,
        env,
    )
    written = [line.removeprefix("created ") for line in out.splitlines() if "created" in line]
    assert len(written) == 9, out
    assert "/api/v1/orgs/{slug}/tasks/" in out
    assert 'ForeignKey("orgs.id"' in (project / "adapters/tasks.py").read_text()
    routes = (project / "entrypoints/http/routes/tasks.py").read_text()
    assert 'prefix="/api/v1/orgs/{slug}/tasks"' in routes
    assert "OrgsReader" in routes
    assert "OrgsWriter" in routes
    _upgrade_lint_and_test(project, env, written)


def test_the_scaffold_without_a_limit_writes_no_race_test(tmp_path: Path) -> None:
    project, env = _project(tmp_path, *SCAFFOLD_TEST_FILES)
    app = [sys.executable, "-c", "from entrypoints.console import main; main()"]

    out = _run([*app, "scaffold", "resource", "tasks"], project, env)

    written = [line.removeprefix("created ") for line in out.splitlines() if "created" in line]
    assert len(written) == 8, out  # five modules, three tests, the migration
    assert "LimitReached" not in (project / "domain/tasks.py").read_text()
    tests = [path for path in written if path.startswith("tests/")]
    _run([*app, "db", "upgrade"], project, env)
    result = _run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], project, env
    )
    assert "failed" not in result, result


def test_a_scaffold_that_fails_leaves_the_tree_as_it_found_it(tmp_path: Path) -> None:
    project, env = _project(tmp_path, *SCAFFOLD_TEST_FILES)
    before = {path: path.read_bytes() for path in project.rglob("*.py")}
    app = [sys.executable, "-c", "from entrypoints.console import main; main()"]
    # The migration cannot be made: nobody listens there.
    env = {**env, "DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:1/nothing"}

    failed = subprocess.run(
        [*app, "scaffold", "resource", "tasks"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr
    assert {path: path.read_bytes() for path in project.rglob("*.py")} == before


def _upgrade_lint_and_test(project: Path, env: dict[str, str], written: list[str]) -> None:
    """Migrate the scaffolded project, lint what the scaffold wrote, and run its own
    tests and its routes against the OpenAPI document (with every other operation's
    documented beside them: the project's own run covers those)."""
    bin_dir = Path(sys.executable).parent
    app = [sys.executable, "-c", "from entrypoints.console import main; main()"]
    _run([*app, "db", "upgrade"], project, env)
    _run([str(bin_dir / "ruff"), "check", *written, *LISTS], project, env)
    _run([str(bin_dir / "ruff"), "format", "--check", *written, *LISTS], project, env)
    _run([str(bin_dir / "mypy"), *written[:-1], *LISTS], project, env)
    _run([str(bin_dir / "lint-imports")], project, env)
    tests = [path for path in written if path.startswith("tests/")]
    result = _run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *tests,
         "tests/e2e/test_schema.py", "-k", "tasks or not test_api_conforms"],
        project,
        env,
    )  # fmt: skip
    assert " passed" in result, result
    assert "failed" not in result, result
    if os.environ.get("TEST_DATABASE_URL"):
        assert "skipped" not in result, result
