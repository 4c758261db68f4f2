"""Operations and request hygiene: health, metrics, the offline docs and the OpenAPI
document, request ids, CORS, and the framework's own errors as problems (the HTTP contract:
General and Operations)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from alembic.script import ScriptDirectory
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from adapters import migrations
from adapters.schema import code_revisions
from application.auth import Authenticate
from application.users import ListUsers
from entrypoints.logging import configure_logging
from tests.conftest import Postgres
from tests.e2e.conftest import (
    FROM_ENV,
    LOGIN,
    ME,
    PASSWORD,
    PROBLEM_JSON,
    SESSIONS,
    USERS,
    Api,
    AppFactory,
    assert_problem,
    bearer,
)

SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


# --- Health -------------------------------------------------------------------------------


async def test_health_live_is_200_ok(api: Api) -> None:
    response = await api.client.get("/health/live")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"status": "ok"}


async def test_health_ready_is_200_ok_when_the_database_answers(api: Api) -> None:
    response = await api.client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.fixture
async def unmigrated_url(database_url: str, postgres: Postgres, tmp_path: Path) -> str:
    """A database of the test's backend that no migration has touched yet."""
    if database_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp_path / 'unmigrated.db'}"
    return await postgres.new_database(migrated=False)


async def test_health_ready_is_503_until_the_schema_reaches_the_code_s_head_revision(
    app_factory: AppFactory, unmigrated_url: str
) -> None:
    [head] = code_revisions().heads
    async with app_factory(database_url=unmigrated_url) as api:
        response = await api.client.get("/health/ready")
        body = assert_problem(response, 503, "service_unavailable")
        assert body["detail"] == (
            "The database schema is behind the code: it is at no revision, the code needs"
            f" {head}. Run `app db upgrade`."
        )
        # Liveness is not readiness: the process is fine, only not to be sent traffic.
        assert (await api.client.get("/health/live")).status_code == 200

        scripts = ScriptDirectory.from_config(migrations.alembic_config(unmigrated_url))
        previous = scripts.get_revision(head).down_revision
        assert isinstance(previous, str)
        await asyncio.to_thread(migrations.upgrade, unmigrated_url, previous)
        response = await api.client.get("/health/ready")
        body = assert_problem(response, 503, "service_unavailable")
        assert f"it is at {previous}, the code needs {head}." in body["detail"]

        await asyncio.to_thread(migrations.upgrade, unmigrated_url)
        response = await api.client.get("/health/ready")
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "ok"}


async def test_health_ready_is_200_on_a_schema_a_newer_release_has_migrated(
    app_factory: AppFactory, unmigrated_url: str
) -> None:
    """During a rollout the new release migrates first: the old release's replicas, still
    serving, must stay ready on the newer schema (its migrations keep the old code working)."""
    await asyncio.to_thread(migrations.upgrade, unmigrated_url)
    engine = create_async_engine(unmigrated_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        await engine.dispose()
    async with app_factory(database_url=unmigrated_url) as api:
        response = await api.client.get("/health/ready")
        assert response.status_code == 200, response.text


def test_a_readiness_check_loads_no_alembic(tmp_path: Path) -> None:
    """The API process reads the code's revisions from the scripts, never through Alembic
    (about 9 MB a process, see entrypoints/serve.py)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    migrations.upgrade(url)
    script = (
        "import asyncio, sys, httpx\n"
        "from entrypoints.asgi import create_app\n"
        "async def main():\n"
        "    app = create_app()\n"
        "    async with app.router.lifespan_context(app):\n"
        "        transport = httpx.ASGITransport(app=app)\n"
        "        async with httpx.AsyncClient(transport=transport, base_url='http://t') as c:\n"
        "            print((await c.get('/health/ready')).status_code)\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')"
        " or m == 'adapters.migrations'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-P", "-c", script],
        env={"DATABASE_URL": url, "ENVIRONMENT": "test", "SECRET_KEY": "s" * 64},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == ["200", "[]"], done.stdout


# --- Metrics ------------------------------------------------------------------------------


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return float(samples.get((name, tuple(sorted(labels.items()))), 0.0))


async def _metrics(api: Api) -> dict[Any, float]:
    response = await api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return _samples(response.text)


async def test_metrics_count_requests_by_route_and_status(api: Api) -> None:
    before = await _metrics(api)
    for _ in range(3):
        assert (await api.client.get(USERS)).status_code == 200
    assert (await api.client.get(ME)).status_code == 401
    assert (await api.client.get(USERS, params={"page": 0})).status_code == 422
    after = await _metrics(api)

    def delta(route: str, status: str, method: str = "GET") -> float:
        labels = {"method": method, "route": route, "status": status}
        return _value(after, "http_requests_total", **labels) - _value(
            before, "http_requests_total", **labels
        )

    assert delta("/api/v1/users/", "200") == 3
    assert delta("/api/v1/users/", "422") == 1
    assert delta("/api/v1/users/me", "401") == 1
    # Route templates, not raw paths: ids never become labels.
    routes = {dict(labels).get("route", "") for _, labels in after}
    assert all(route.endswith("{session_id}") for route in routes if "/sessions/" in route)


async def test_invented_methods_share_one_metric_label(api: Api) -> None:
    """A client cannot grow the metrics (and the process) by inventing methods."""
    for method in ("BREW", "PROPFIND", "X-FOO"):
        assert (await api.client.request(method, USERS)).status_code == 405
    samples = await _metrics(api)
    methods = {
        dict(labels).get("method") for name, labels in samples if name == "http_requests_total"
    }
    assert "OTHER" in methods
    assert not methods & {"BREW", "PROPFIND", "X-FOO"}


async def test_metrics_have_latency_histograms_by_route(api: Api) -> None:
    await api.client.get(USERS)
    samples = await _metrics(api)
    buckets = [
        dict(labels)
        for name, labels in samples
        if name == "http_request_duration_seconds_bucket"
        and dict(labels).get("route") == "/api/v1/users/"
    ]
    assert buckets
    count = [
        value
        for (name, labels), value in samples.items()
        if name == "http_request_duration_seconds_count"
        and dict(labels).get("route") == "/api/v1/users/"
    ]
    assert sum(count) >= 1


async def test_metrics_count_login_successes_and_failures(api: Api) -> None:
    await api.register("ada")
    before = await _metrics(api)
    await api.login("ada")
    await api.login("ada")
    response = await api.client.post(LOGIN, data={"username": "ada", "password": "wrong one!"})
    assert response.status_code == 401
    response = await api.client.post(LOGIN, data={"username": "nobody", "password": PASSWORD})
    assert response.status_code == 401
    after = await _metrics(api)
    successes = {
        key: value for key, value in after.items() if "login" in key[0] and "success" in str(key)
    }
    assert successes, "a login success counter exists"

    def delta(outcome: str) -> float:
        return float(
            sum(
                value - before.get(key, 0.0)
                for key, value in after.items()
                if key[0].endswith("_total")
                and "login" in key[0]
                and (("outcome", outcome) in key[1])
            )
        )

    assert delta("success") == 2
    assert delta("failure") == 2


# --- Docs and the OpenAPI document --------------------------------------------------------


async def test_docs_load_everything_from_the_app_itself(api: Api) -> None:
    response = await api.client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "swagger-ui" in html.lower()
    references = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assert references
    for reference in references:
        assert not re.match(r"(?i)^(https?:)?//", reference), reference
    assert not re.search(r"(?i)cdn|unpkg|jsdelivr|cdnjs", html)
    scripts = re.findall(r"""<script[^>]+src\s*=\s*["']([^"']+)["']""", html)
    styles = re.findall(r"""<link[^>]+href\s*=\s*["']([^"']+\.css)["']""", html)
    assert scripts
    assert styles
    for script in scripts:
        asset = await api.client.get(script)
        assert asset.status_code == 200, script
        assert "javascript" in asset.headers["content-type"]
        assert len(asset.content) > 10_000
    for style in styles:
        asset = await api.client.get(style)
        assert asset.status_code == 200, style
        assert asset.headers["content-type"].startswith("text/css")
    # The page points Swagger UI at the app's own document.
    assert "/openapi.json" in html


async def test_openapi_declares_the_oauth2_password_flow(api: Api) -> None:
    response = await api.client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    schemes = document["components"]["securitySchemes"]
    flows = [s["flows"]["password"] for s in schemes.values() if s.get("type") == "oauth2"]
    assert flows
    assert flows[0]["tokenUrl"] == "/api/v1/auth/login"
    scheme_name = next(name for name, s in schemes.items() if s.get("type") == "oauth2")
    for path, method in [
        (ME, "get"),
        (ME, "patch"),
        (ME, "delete"),
        ("/api/v1/auth/logout-all", "post"),
        (SESSIONS, "get"),
        (SESSIONS + "/{session_id}", "delete"),
    ]:
        security = document["paths"][path][method].get("security", [])
        assert any(scheme_name in item for item in security), (path, method)
    login_body = document["paths"][LOGIN]["post"]["requestBody"]["content"]
    assert "application/x-www-form-urlencoded" in login_body
    assert "application/json" in login_body


async def test_the_swagger_authorize_request_logs_in(api: Api) -> None:
    """What Swagger UI's Authorize dialog sends for the password flow."""
    await api.register("ada")
    response = await api.client.post(
        LOGIN,
        content=f"grant_type=password&username=ada&password={PASSWORD.replace(' ', '+')}&scope=",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "*/*"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert (await api.me(body["access_token"])).status_code == 200


DOCUMENTED: dict[tuple[str, str], tuple[int, set[int]]] = {
    (LOGIN, "post"): (200, {401, 413, 422, 429, 503}),
    ("/api/v1/auth/refresh", "post"): (200, {401, 413, 422, 429, 503}),
    ("/api/v1/auth/logout", "post"): (204, {401, 413, 422, 429, 503}),
    ("/api/v1/auth/logout-all", "post"): (204, {401, 503}),
    (SESSIONS, "get"): (200, {401, 503}),
    (SESSIONS + "/{session_id}", "delete"): (204, {401, 404, 503}),
    (USERS, "post"): (201, {409, 413, 422, 429, 503}),
    (USERS, "get"): (200, {422, 503}),
    (ME, "get"): (200, {401, 503}),
    (ME, "patch"): (200, {401, 403, 409, 413, 422, 503}),
    (ME, "delete"): (204, {401, 503}),
    ("/health/live", "get"): (200, set()),
    ("/health/ready", "get"): (200, {503}),
}


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


async def test_openapi_documents_every_success_and_error_response(api: Api) -> None:
    document = (await api.client.get("/openapi.json")).json()
    for (path, method), (success, errors) in DOCUMENTED.items():
        operation = document["paths"][path][method]
        responses = {int(status): value for status, value in operation["responses"].items()}
        assert success in responses, (path, method, sorted(responses))
        if success != 204:
            assert "application/json" in responses[success]["content"], (path, method)
        for status in errors:
            assert status in responses, (path, method, status, sorted(responses))
            content = responses[status]["content"]
            assert PROBLEM_JSON in content, (path, method, status)
            schema = _resolve(document, content[PROBLEM_JSON]["schema"])
            for field in ("type", "title", "status", "detail", "code"):
                assert field in schema["properties"], (path, method, status, field)
            if status == 422:
                assert "errors" in schema["properties"]
            if status == 401:
                assert "WWW-Authenticate" in responses[status].get("headers", {})
            if status == 429:
                assert "Retry-After" in responses[status].get("headers", {})


async def test_openapi_response_schemas_match_the_contracts_bodies(api: Api) -> None:
    document = (await api.client.get("/openapi.json")).json()

    def success_schema(path: str, method: str, status: str = "200") -> dict[str, Any]:
        content = document["paths"][path][method]["responses"][status]["content"]
        return _resolve(document, content["application/json"]["schema"])

    token_pair = success_schema(LOGIN, "post")
    assert set(token_pair["properties"]) == {
        "access_token",
        "refresh_token",
        "token_type",
        "expires_in",
    }
    user = success_schema(ME, "get")
    assert set(user["properties"]) == {
        "id",
        "email",
        "username",
        "full_name",
        "is_active",
        "is_superuser",
        "is_verified",
        "created_at",
    }
    page = success_schema(USERS, "get")
    assert set(page["properties"]) == {"items", "total", "page", "size", "pages"}
    public_user = _resolve(document, page["properties"]["items"]["items"])
    assert set(public_user["properties"]) == {"id", "username", "full_name", "created_at"}
    sessions = success_schema(SESSIONS, "get")
    session = _resolve(document, sessions["items"])
    assert set(session["properties"]) == {
        "id",
        "created_at",
        "last_used_at",
        "user_agent",
        "current",
    }
    text = json.dumps(document).lower()
    assert "password_hash" not in text
    assert "token_version" not in text


# --- Request ids --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_id", ["a", "A" * 128, "abc-DEF_123.xyz", "0", "..", "-_-"], ids=repr
)
async def test_a_sane_request_id_is_echoed(api: Api, request_id: str) -> None:
    response = await api.client.get("/health/live", headers={"X-Request-ID": request_id})
    assert response.headers["x-request-id"] == request_id


@pytest.mark.parametrize(
    "request_id",
    ["A" * 129, "A" * 130, "has space", "semi;colon", "slash/x", 'quote"x', "", "<script>"],
    ids=repr,
)
async def test_an_insane_request_id_is_replaced_by_a_fresh_one(api: Api, request_id: str) -> None:
    seen = set()
    for _ in range(2):
        response = await api.client.get("/health/live", headers={"X-Request-ID": request_id})
        replaced = response.headers["x-request-id"]
        assert replaced != request_id
        assert SANE_ID.fullmatch(replaced)
        seen.add(replaced)
    assert len(seen) == 2, "each request gets its own id"


async def test_a_non_ascii_request_id_is_replaced(api: Api) -> None:
    odd: dict[str, Any] = {"X-Request-ID": "trace-é".encode()}
    response = await api.client.get("/health/live", headers=odd)
    assert SANE_ID.fullmatch(response.headers["x-request-id"])
    assert response.headers["x-request-id"] != "trace-é"


async def test_every_response_carries_a_request_id(app_factory: AppFactory) -> None:
    async with app_factory(rate_limit_enabled=True, rate_limit_login="1/minute") as api:
        await api.register("ada")
        responses = [
            await api.client.get("/health/live"),
            await api.client.post(LOGIN, data={"username": "ada", "password": PASSWORD}),
            await api.client.post(LOGIN, data={"username": "ada", "password": PASSWORD}),  # 429
            await api.client.get(ME),  # 401
            await api.client.get("/nowhere"),  # 404
            await api.client.put(USERS),  # 405
            await api.client.get(USERS, params={"size": 0}),  # 422
            await api.client.post(USERS, content=b"x" * (2 * 1024 * 1024)),  # 413
            await api.client.get("/docs"),
            await api.client.get("/openapi.json"),
            await api.client.get("/metrics"),
        ]
        statuses = {response.status_code for response in responses}
        assert {200, 401, 404, 405, 413, 422, 429} <= statuses
        for response in responses:
            assert SANE_ID.fullmatch(response.headers["x-request-id"]), response


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """The app's log lines (JSON), written to a buffer for the test."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    was_configured = structlog.is_configured()
    saved_config = structlog.get_config()
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        if was_configured:
            structlog.configure(**saved_config)
        else:
            structlog.reset_defaults()


def _log_events(stream: io.StringIO) -> list[dict[str, Any]]:
    events = []
    for line in stream.getvalue().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


async def test_the_request_id_appears_in_the_logs(api: Api, log_stream: io.StringIO) -> None:
    await api.client.get(USERS, headers={"X-Request-ID": "trace-4711.abc"})
    # The client's id is logged beside the server's own, which names the request.
    events = [e for e in _log_events(log_stream) if e.get("client_request_id") == "trace-4711.abc"]
    assert events, log_stream.getvalue()
    assert any(e.get("status") == 200 for e in events)
    assert all(re.fullmatch(r"[0-9a-f]{32}", e["request_id"]) for e in events)
    response = await api.client.get(USERS, headers={"X-Request-ID": "bad id"})
    fresh = response.headers["x-request-id"]
    assert any(e.get("request_id") == fresh for e in _log_events(log_stream))


async def test_logs_never_contain_passwords_or_tokens(api: Api, log_stream: io.StringIO) -> None:
    await api.register("ada")
    tokens = await api.login("ada")
    await api.client.post(LOGIN, data={"username": "ada", "password": "a wrong secret pw"})
    await api.me(tokens["access_token"])
    text = log_stream.getvalue()
    assert text
    for secret in (PASSWORD, "a wrong secret pw", tokens["access_token"], tokens["refresh_token"]):
        assert secret not in text


# --- Framework errors as problems ---------------------------------------------------------


async def test_an_unknown_route_is_a_404_problem(api: Api) -> None:
    for path in ("/nowhere", "/api/v1/nothing", "/api/v2/users/", "/api/v1/users/42"):
        response = await api.client.get(path)
        assert_problem(response, 404, "not_found")


async def test_a_wrong_method_is_a_405_problem_with_allow(api: Api) -> None:
    for method, path in [
        ("PUT", USERS),
        ("DELETE", USERS),
        ("GET", LOGIN),
        ("POST", ME),
        ("POST", "/health/live"),
        ("PATCH", SESSIONS),
    ]:
        response = await api.client.request(method, path)
        assert response.status_code == 405, (method, path)
        assert response.headers["content-type"] == PROBLEM_JSON
        body = response.json()
        assert body["status"] == 405
        assert body["type"] == "about:blank"
        assert isinstance(body["code"], str)
        assert body["code"]
        assert "allow" in response.headers


class _Boom:
    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("internal detail: SELECT password_hash FROM users /srv/app.py")


BROKEN_USE_CASES = {ListUsers: _Boom(), Authenticate: _Boom()}


async def test_an_unexpected_error_is_a_500_problem_with_the_request_id_and_no_internals(
    app_factory: AppFactory, log_stream: io.StringIO
) -> None:
    async with app_factory(use_cases=BROKEN_USE_CASES) as api:
        for response in (
            await api.client.get(USERS, headers={"X-Request-ID": "boom-1"}),
            await api.client.get(ME, headers={**bearer("x.y.z"), "X-Request-ID": "boom-2"}),
            await api.client.get(USERS),
        ):
            assert response.status_code == 500
            assert response.headers["content-type"] == PROBLEM_JSON
            body = response.json()
            assert body["type"] == "about:blank"
            assert body["title"] == "Internal Server Error"
            assert body["status"] == 500
            assert body["code"] == "internal_error"
            assert body["detail"]
            # The server's own id, which its log lines carry; echoed when the client
            # sent none.
            assert re.fullmatch(r"[0-9a-f]{32}", body["request_id"])
            if response.request.headers.get("x-request-id") is None:
                assert body["request_id"] == response.headers["x-request-id"]
            for leak in (
                "internal detail",
                "select",
                "password_hash",
                "runtimeerror",
                "traceback",
                "/srv",
            ):
                assert leak not in response.text.lower()
        assert body["request_id"] != "boom-2"
        # The app keeps serving, and the failure is logged with its traceback and id.
        assert (await api.client.get("/health/live")).status_code == 200
        errors = [e for e in _log_events(log_stream) if e.get("client_request_id") == "boom-1"]
        assert any("RuntimeError" in json.dumps(e) for e in errors), log_stream.getvalue()


# --- CORS ---------------------------------------------------------------------------------

ALLOWED = "https://app.example.com"
OTHER = "https://evil.example.net"


async def test_cors_headers_are_sent_to_allowed_origins_only(app_factory: AppFactory) -> None:
    async with app_factory(allowed_origins=[ALLOWED, "http://localhost:3000"]) as api:
        allowed = await api.client.get(USERS, headers={"Origin": ALLOWED})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == ALLOWED
        other = await api.client.get(USERS, headers={"Origin": OTHER})
        assert other.status_code == 200
        assert "access-control-allow-origin" not in other.headers
        local = await api.client.get(USERS, headers={"Origin": "http://localhost:3000"})
        assert local.headers["access-control-allow-origin"] == "http://localhost:3000"
        # Errors reach the allowed origin's scripts too.
        unauthorized = await api.client.get(ME, headers={"Origin": ALLOWED})
        assert unauthorized.status_code == 401
        assert unauthorized.headers["access-control-allow-origin"] == ALLOWED


async def test_cors_preflight_for_an_allowed_origin(app_factory: AppFactory) -> None:
    async with app_factory(allowed_origins=[ALLOWED]) as api:
        response = await api.client.options(
            ME,
            headers={
                "Origin": ALLOWED,
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == ALLOWED
        assert "PATCH" in response.headers["access-control-allow-methods"]
        allowed_headers = response.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed_headers
        assert "content-type" in allowed_headers
        assert response.headers.get("x-request-id")


async def test_cors_preflight_from_another_origin_gets_no_cors_headers(
    app_factory: AppFactory,
) -> None:
    async with app_factory(allowed_origins=[ALLOWED]) as api:
        response = await api.client.options(
            ME, headers={"Origin": OTHER, "Access-Control-Request-Method": "PATCH"}
        )
        assert 400 <= response.status_code < 500
        assert "access-control-allow-origin" not in response.headers


async def test_settings_come_from_environment_variables(
    app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOWED_ORIGINS", json.dumps([ALLOWED]))
    monkeypatch.setenv("RATE_LIMIT_ENABLED", "true")
    monkeypatch.setenv("RATE_LIMIT_REGISTER", "1/minute")
    monkeypatch.setenv("TRUSTED_PROXIES", '["127.0.0.1"]')
    names = ("allowed_origins", "rate_limit_enabled", "rate_limit_register", "trusted_proxies")
    async with app_factory(**dict.fromkeys(names, FROM_ENV)) as api:
        response = await api.client.get(USERS, headers={"Origin": ALLOWED})
        assert response.headers["access-control-allow-origin"] == ALLOWED
        forwarded = {"X-Forwarded-For": "203.0.113.77"}
        body = {"email": "ada@example.com", "username": "ada", "password": PASSWORD}
        assert (await api.client.post(USERS, json=body, headers=forwarded)).status_code == 201
        body = {"email": "bob@example.com", "username": "bob", "password": PASSWORD}
        limited = await api.client.post(USERS, json=body, headers=forwarded)
        assert_problem(limited, 429, "rate_limited")
        elsewhere = {"X-Forwarded-For": "203.0.113.78"}
        assert (await api.client.post(USERS, json=body, headers=elsewhere)).status_code == 201


async def test_no_cors_headers_without_allowed_origins(api: Api) -> None:
    response = await api.client.get(USERS, headers={"Origin": ALLOWED})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    preflight = await api.client.options(
        USERS, headers={"Origin": ALLOWED, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code < 500
    assert "access-control-allow-origin" not in preflight.headers


async def test_a_validation_problem_has_exactly_the_documented_fields(api: Api) -> None:
    response = await api.client.post(
        USERS, json={"email": "ada@example.com", "username": "ada", "password": "12345678"}
    )
    body = assert_problem(response, 422, "validation_error")
    assert set(body) == {"type", "title", "status", "detail", "code", "errors"}
    assert "12345678" not in response.text


async def test_the_users_path_without_its_trailing_slash_never_5xx(api: Api) -> None:
    response = await api.client.get("/api/v1/users")
    assert response.status_code < 500


async def test_an_unexpected_error_still_reaches_an_allowed_origin(
    app_factory: AppFactory,
) -> None:
    async with app_factory(use_cases=BROKEN_USE_CASES, allowed_origins=[ALLOWED]) as api:
        response = await api.client.get(USERS, headers={"Origin": ALLOWED})
        assert response.status_code == 500
        assert response.headers.get("access-control-allow-origin") == ALLOWED
