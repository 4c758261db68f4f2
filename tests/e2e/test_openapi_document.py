"""The OpenAPI document as generated clients read it: readable, unique operation ids, the
500 problem on every operation, and every field the API always sends marked required."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from tests.e2e.conftest import (
    PUBLIC_USER_FIELDS,
    SESSION_FIELDS,
    TOKEN_PAIR_FIELDS,
    USER_FIELDS,
    Api,
)

CAMEL_CASE = re.compile(r"[a-z][a-zA-Z0-9]*")
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
PROBLEM_FIELDS = {"type", "title", "status", "detail", "code"}


async def document(api: Api) -> dict[str, Any]:
    response = await api.client.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", operation


def schema(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(doc["components"]["schemas"][name])


async def test_every_operation_has_a_unique_camel_case_operation_id(api: Api) -> None:
    doc = await document(api)
    ids = {where: operation.get("operationId", "") for where, operation in operations(doc)}
    for where, operation_id in ids.items():
        assert CAMEL_CASE.fullmatch(operation_id), (where, operation_id)
    assert len(set(ids.values())) == len(ids), sorted(ids.values())
    # Named after what the operation does.
    assert ids["POST /api/v1/auth/login"] == "logIn"
    assert ids["GET /api/v1/users/me"] == "getMe"
    assert ids["GET /api/v1/users/"] == "listUsers"
    assert ids["POST /api/v1/users/"] == "registerUser"
    assert ids["GET /api/v1/admin/users"] == "searchUsers"


async def test_every_operation_declares_the_internal_error_problem(api: Api) -> None:
    doc = await document(api)
    for where, operation in operations(doc):
        declared = operation["responses"].get("500")
        assert declared, f"{where} declares no 500"
        content = declared["content"]
        assert list(content) == ["application/problem+json"], where
        assert content["application/problem+json"]["schema"] == {
            "$ref": "#/components/schemas/Problem"
        }, where
        assert "internal_error" in declared["description"], where


async def test_every_field_always_sent_is_required(api: Api) -> None:
    doc = await document(api)
    always_sent = {
        "TokenPair": TOKEN_PAIR_FIELDS,
        "User": USER_FIELDS,
        "PublicUser": PUBLIC_USER_FIELDS,
        "UserPage": {"items", "total", "page", "size", "pages"},
        "Session": SESSION_FIELDS,
        "Status": {"status"},
        "Problem": PROBLEM_FIELDS,
        "ValidationProblem": PROBLEM_FIELDS | {"errors"},
    }
    for name, fields in always_sent.items():
        found = schema(doc, name)
        assert set(found["required"]) == fields, name
        assert set(found["properties"]) >= fields, name
    # Only on a 500: documented, not required.
    assert "request_id" in schema(doc, "Problem")["properties"]
