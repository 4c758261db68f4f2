"""``entrypoints.asgi:create_app``, the factory uvicorn runs: settings from the
environment, one line and exit 1 on a bad one."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from entrypoints.asgi import create_app
from entrypoints.settings import Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.lower() in Settings.model_fields:
            monkeypatch.delenv(name)


async def test_the_factory_serves_the_api_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "test")
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    monkeypatch.setenv("LOG_LEVEL", "WARNING")

    app = create_app()

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_a_bad_setting_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")

    with pytest.raises(SystemExit) as stopped:
        create_app()

    assert stopped.value.code == 1
    err = capsys.readouterr().err
    assert err.strip().startswith("invalid configuration: SECRET_KEY")
    assert len(err.strip().splitlines()) == 1
