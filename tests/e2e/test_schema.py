"""The API against its own OpenAPI document: a schemathesis run over every operation
(no 5xx; every status, content type, header and body as documented; invalid requests
refused, schema-valid ones accepted), and the parts of the document that clients and
Swagger UI rely on."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import schemathesis
from dependency_injector import providers
from email_validator import EmailNotValidError, validate_email
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import ASGIClient, get_client
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from adapters.hasher import Argon2Hasher
from domain.rules import common_passwords
from entrypoints.container import ContainerServices, build_services, create_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings

PROBLEM_JSON = "application/problem+json"
LOGIN_PATH = "/api/v1/auth/login"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_acceptance,
]
# Bounded (a few seconds an operation: the run grows with the API), and the same cases
# every time.
FUZZ_SETTINGS = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def build_app(tmp_path: Path, sqlite_template: Path) -> FastAPI:
    """The API on a fresh SQLite copy, rate limits off, a fast hasher."""
    path = tmp_path / "schema.db"
    shutil.copyfile(sqlite_template, path)
    app_settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        database_url=f"sqlite+aiosqlite:///{path}",
        secret_key=secrets.token_hex(32),
        rate_limit_enabled=False,
    )
    container = create_container(app_settings)
    container.adapters.hasher.override(
        providers.Singleton(Argon2Hasher, time_cost=1, memory_cost=1024, parallelism=1)
    )
    return create_app(app_settings, ContainerServices(container))


@pytest.fixture
def api(tmp_path: Path, sqlite_template: Path) -> FastAPI:
    # One app per operation: schemathesis ends an ASGI app's lifespan (which releases
    # the pool) when the test that started it ends.
    return build_app(tmp_path, sqlite_template)


@pytest.fixture
def client(api: FastAPI) -> Iterator[ASGIClient]:
    with get_client(cast(Any, api)) as http:
        yield http


def fresh_token(client: ASGIClient) -> str:
    """A new user's access token: each case may delete, log out or re-password its
    user without spoiling the next one."""
    name = f"fz_{secrets.token_hex(6)}"
    password = f"pw-{secrets.token_hex(8)}"
    created = client.post(
        "/api/v1/users/",
        json={"email": f"{name}@example.com", "username": name, "password": password},
    )
    assert created.status_code == 201, created.text
    login = client.post(LOGIN_PATH, data={"username": name, "password": password})
    assert login.status_code == 200, login.text
    return str(login.json()["access_token"])


def needs_auth(case: Any) -> bool:
    return bool(case.operation.definition.raw.get("security"))


def _document_only() -> dict[str, Any]:
    # Building the app connects to nothing, so its document can be read at import time:
    # schemathesis needs the schema to collect its tests (its lazy fixture loader does
    # not work with this pytest), and each test's requests go to its own `api`.
    app_settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        database_url="sqlite+aiosqlite:///:memory:",
        secret_key=secrets.token_hex(32),
    )
    return create_app(app_settings, build_services(app_settings)).openapi()


DOCUMENT = _document_only()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def refused_beyond_the_schema(case: Any) -> bool:
    """Rules no JSON Schema states, each said in the field's description: common
    passwords are refused, and so are email addresses at special-use domains (``.test``,
    ``localhost``…); a mailed token is one only the server can make (a made-up one is
    a 400); and only a superuser (never the fuzzing user) may ask for an admin scope. Any
    other schema-valid request must be accepted."""
    body = case.body if isinstance(case.body, dict) else {}
    if "token" in body:
        return True
    scopes = body.get("scopes")
    if isinstance(scopes, list) and any(str(s).startswith("admin:") for s in scopes):
        return True
    password, email = body.get("password", body.get("new_password")), body.get("email")
    if isinstance(password, str) and password.lower() in common_passwords():
        return True
    if isinstance(email, str):
        try:
            validate_email(email, check_deliverability=False)
        except EmailNotValidError:
            return True
    return False


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_conforms_to_its_openapi_document(case: Any, api: FastAPI, client: ASGIClient) -> None:
    headers = {"Authorization": f"Bearer {fresh_token(client)}"} if needs_auth(case) else None
    checks = CHECKS
    if refused_beyond_the_schema(case):
        checks = [check for check in CHECKS if check is not positive_data_acceptance]
    case.call_and_validate(app=api, session=client, headers=headers, checks=checks)


# The document itself -----------------------------------------------------------------


@pytest.fixture
def document(client: ASGIClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    served = dict(response.json())
    assert served == DOCUMENT  # what the fuzzer ran against is what clients get
    return served


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield method.upper(), path, operation


def test_every_error_response_is_documented_as_problem_json(document: dict[str, Any]) -> None:
    assert document["components"]["schemas"]["Problem"]["required"] == [
        "type",
        "title",
        "status",
        "detail",
        "code",
    ]
    assert "errors" in document["components"]["schemas"]["ValidationProblem"]["required"]
    for method, path, operation in operations(document):
        errors = {int(s): r for s, r in operation["responses"].items() if int(s) >= 400}
        where = f"{method} {path}"
        if path != "/health/live":
            assert errors, f"{where} documents no error response"
        for status, response in errors.items():
            content = response.get("content", {})
            assert list(content) == [PROBLEM_JSON], f"{where} {status}: {list(content)}"
            ref = content[PROBLEM_JSON]["schema"]["$ref"]
            expected = "ValidationProblem" if status == 422 else "Problem"
            assert ref == f"#/components/schemas/{expected}", f"{where} {status}"
            if status == 401:
                assert "WWW-Authenticate" in response.get("headers", {}), where
            if status == 429:
                assert "Retry-After" in response.get("headers", {}), where


def test_request_bodies_and_secured_operations_document_their_errors(
    document: dict[str, Any],
) -> None:
    for method, path, operation in operations(document):
        statuses = set(operation["responses"])
        where = f"{method} {path}"
        if "requestBody" in operation or any(
            p.get("in") in {"query", "path"} for p in operation.get("parameters", [])
        ):
            assert "422" in statuses, f"{where} takes input but documents no 422"
        if "requestBody" in operation:
            assert "413" in statuses, f"{where} takes a body but documents no 413"
        if operation.get("security"):
            assert "401" in statuses, f"{where} needs a token but documents no 401"


ORG_OPERATIONS = {
    ("POST", "/api/v1/orgs"),
    ("GET", "/api/v1/orgs"),
    ("GET", "/api/v1/orgs/{slug}"),
    ("PATCH", "/api/v1/orgs/{slug}"),
    ("DELETE", "/api/v1/orgs/{slug}"),
    ("GET", "/api/v1/orgs/{slug}/members"),
    ("PATCH", "/api/v1/orgs/{slug}/members/{user_id}"),
    ("DELETE", "/api/v1/orgs/{slug}/members/{user_id}"),
    ("POST", "/api/v1/orgs/{slug}/invitations"),
    ("GET", "/api/v1/orgs/{slug}/invitations"),
    ("DELETE", "/api/v1/orgs/{slug}/invitations/{invitation_id}"),
    ("GET", "/api/v1/orgs/{slug}/audit-events"),
    ("POST", "/api/v1/invitations/accept"),
}


def secured_anywhere(document: dict[str, Any], name: str) -> set[tuple[str, str]]:
    return {
        (method, path)
        for method, path, operation in operations(document)
        if {name: []} in operation.get("security", [])
    }


def test_the_oauth2_password_flow_logs_in_at_the_login_endpoint(
    document: dict[str, Any],
) -> None:
    schemes = document["components"]["securitySchemes"]
    oauth2 = [s for s in schemes.values() if s["type"] == "oauth2"]
    assert len(oauth2) == 1
    assert oauth2[0]["flows"]["password"]["tokenUrl"] == LOGIN_PATH
    [name] = [n for n, s in schemes.items() if s["type"] == "oauth2"]
    # The project's own operations (a resource of your own adds to them).
    own = ("/api/v1/users", "/api/v1/auth", "/api/v1/admin")
    secured = {
        (method, path)
        for method, path, operation in operations(document)
        if {name: []} in operation.get("security", []) and path.startswith(own)
    }
    assert secured == {
        ("GET", "/api/v1/users/me"),
        ("PATCH", "/api/v1/users/me"),
        ("DELETE", "/api/v1/users/me"),
        ("POST", "/api/v1/auth/logout-all"),
        ("POST", "/api/v1/auth/reauthenticate"),
        ("POST", "/api/v1/auth/verify-email/resend"),
        ("GET", "/api/v1/auth/sessions"),
        ("DELETE", "/api/v1/auth/sessions/{session_id}"),
        ("GET", "/api/v1/auth/mfa"),
        ("POST", "/api/v1/auth/mfa/totp"),
        ("POST", "/api/v1/auth/mfa/totp/confirm"),
        ("DELETE", "/api/v1/auth/mfa/totp"),
        ("POST", "/api/v1/auth/mfa/recovery-codes"),
        ("POST", "/api/v1/auth/passkeys/registration/options"),
        ("POST", "/api/v1/auth/passkeys"),
        ("GET", "/api/v1/auth/passkeys"),
        ("PATCH", "/api/v1/auth/passkeys/{passkey_id}"),
        ("DELETE", "/api/v1/auth/passkeys/{passkey_id}"),
        ("GET", "/api/v1/admin/users"),
        ("GET", "/api/v1/admin/users/{user_id}"),
        ("PATCH", "/api/v1/admin/users/{user_id}"),
        ("DELETE", "/api/v1/admin/users/{user_id}"),
        ("POST", "/api/v1/admin/users/{user_id}/password-reset"),
        ("GET", "/api/v1/admin/users/{user_id}/sessions"),
        ("DELETE", "/api/v1/admin/users/{user_id}/sessions"),
        ("DELETE", "/api/v1/admin/users/{user_id}/mfa"),
        ("GET", "/api/v1/admin/audit-events"),
        ("POST", "/api/v1/auth/tokens"),
        ("GET", "/api/v1/auth/tokens"),
        ("DELETE", "/api/v1/auth/tokens/{token_id}"),
    }
    # Organizations' (a resource of an organization adds its own under them).
    assert secured_anywhere(document, name) >= ORG_OPERATIONS
    login = document["paths"][LOGIN_PATH]["post"]
    content = login["requestBody"]["content"]
    form = content["application/x-www-form-urlencoded"]["schema"]
    # Both form encodings, each grant with the fields it needs and the server's limits.
    assert content["multipart/form-data"]["schema"] == form
    password_grant, refresh_grant = form["oneOf"]
    assert set(password_grant["required"]) == {"username", "password"}
    assert set(refresh_grant["required"]) == {"grant_type", "refresh_token"}
    for field in ("username", "password"):
        assert password_grant["properties"][field]["maxLength"] == 1024
        assert password_grant["properties"][field]["minLength"] == 1
    assert refresh_grant["properties"]["refresh_token"]["maxLength"] == 4096
    assert "application/json" in content
    ok = login["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/TokenPair"}


def test_every_success_response_has_a_schema(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            # 204 and 202 ("queued") have no body.
            if 200 <= int(status) < 300 and status not in ("202", "204"):
                schema_ = response["content"]["application/json"]["schema"]
                assert schema_, f"{method} {path} {status}"


def test_optional_fields_that_refuse_null_are_not_documented_as_nullable(
    document: dict[str, Any],
) -> None:
    update = document["components"]["schemas"]["UserUpdate"]
    assert update["additionalProperties"] is False
    assert "required" not in update
    for name in ("email", "username", "password", "current_password"):
        field = update["properties"][name]
        assert field["type"] == "string", name
        assert "anyOf" not in field, name
    nullable = update["properties"]["full_name"]["anyOf"]
    assert {"type": "null"} in nullable
    assert update["dependentRequired"] == {
        "email": ["current_password"],
        "password": ["current_password"],
    }
