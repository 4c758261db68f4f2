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
TEST_FILES = ["tests/__init__.py", "tests/fakes.py", "tests/unit/__init__.py"]

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
            assert (await client.get("/api/v1/projects/")).status_code == 401
            listed = await client.get("/api/v1/projects/", headers=auth)
            assert [p["name"] for p in listed.json()] == ["Apollo"], listed.text
            schema = (await client.get("/openapi.json")).json()
            assert "/api/v1/projects/" in schema["paths"]
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
    # Six files in all (these five and the generated migration), and the two lists.
    assert len(created) == 5, [step.spec for step in created]
    assert {spec.split(",")[0] for spec in edited} == {
        "in entrypoints/container.py",
        "in entrypoints/http/routes/__init__.py",
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
    assert "create_table('projects'" in generated[0].read_text()
    _run([python, "-m", "alembic", "upgrade", "head"], project, env)

    _run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit/test_projects.py"],
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
    "tests/forged.py",
]


def test_the_scaffold_writes_a_resource_that_passes_lint_and_its_tests(tmp_path: Path) -> None:
    project, env = _project(tmp_path, *SCAFFOLD_TEST_FILES)
    bin_dir = Path(sys.executable).parent
    app = [sys.executable, "-c", "from entrypoints.console import main; main()"]

    out = _run([*app, "scaffold", "resource", "tasks"], project, env)
    written = [line.removeprefix("created ") for line in out.splitlines() if "created" in line]
    assert len(written) == 7, out  # six files (two of them tests) and the migration
    assert 'create_table(\n        "tasks"' in (project / written[-1]).read_text()
    # Numbered like the project's own migrations, after the last of them.
    assert (
        Path(written[-1]).name.split("_")[1]
        == f"{len(list(ROOT.glob('migrations/versions/*.py'))) + 1:04d}"
    )
    # One line in each explicit list: who builds CreateTask, and which routers are served.
    lists = ["entrypoints/container.py", "entrypoints/http/routes/__init__.py"]
    assert "providers.Factory(CreateTask" in (project / lists[0]).read_text()
    assert "tasks.router," in (project / lists[1]).read_text()
    _run([*app, "db", "upgrade"], project, env)

    _run([str(bin_dir / "ruff"), "check", *written, *lists], project, env)
    _run([str(bin_dir / "ruff"), "format", "--check", *written, *lists], project, env)
    _run([str(bin_dir / "mypy"), *written[:-1], *lists], project, env)
    _run([str(bin_dir / "lint-imports")], project, env)
    tests = [path for path in written if path.startswith("tests/")]
    result = _run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], project, env
    )
    assert " passed" in result, result
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
