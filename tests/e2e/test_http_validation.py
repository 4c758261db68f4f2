"""Malformed input of every kind gets a 4xx problem, never a 5xx (the HTTP contract: General)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    LOGIN,
    LOGOUT,
    ME,
    PASSWORD,
    PROBLEM_JSON,
    REFRESH,
    USERS,
    Api,
    assert_problem,
    bearer,
)

MIB = 1024 * 1024
JSON = {"Content-Type": "application/json"}
JSON_ENDPOINTS = [
    ("POST", USERS),
    ("POST", LOGIN),
    ("POST", REFRESH),
    ("POST", LOGOUT),
    ("PATCH", ME),
]
ENDPOINT_IDS = [f"{method} {path}" for method, path in JSON_ENDPOINTS]


def assert_client_error(response: httpx.Response, case: str = "") -> None:
    assert 400 <= response.status_code < 500, (case, response.status_code, response.text)
    assert response.headers["content-type"].split(";")[0] == PROBLEM_JSON, case
    body = response.json()
    assert body["status"] == response.status_code
    assert isinstance(body["code"], str)


async def _sender(api: Api) -> Callable[..., Awaitable[httpx.Response]]:
    """Sends requests, with a valid access token where the path needs one."""
    _, tokens = await api.user_with_tokens()

    async def send(method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if path == ME:
            headers = {**headers, **bearer(tokens["access_token"])}
        return await api.client.request(method, path, headers=headers, **kwargs)

    return send


BAD_BODIES = {
    "not JSON": b"this is not json",
    "truncated JSON": b'{"email": "ada@example.com", ',
    "a JSON array": b'[{"username": "ada", "password": "x"}]',
    "a JSON string": b'"ada"',
    "a JSON number": b"42",
    "JSON null": b"null",
    "JSON true": b"true",
    "empty": b"",
    "invalid UTF-8": b'{"username": "\xff\xfe\xfd", "password": "\xc3\x28"}',
    "lone surrogate escape": b'{"username": "\\ud800", "password": "\\udfff\\ud800"}',
    "NaN literal": b'{"username": NaN, "password": Infinity}',
    "huge exponent": b'{"username": 1e999999, "password": -1e999999}',
    "huge integer": b'{"username": ' + b"9" * 5000 + b', "password": "x"}',
    "10,000-deep nested arrays": b'{"username": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    "10,000-deep nested objects": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    "NUL bytes": b"\x00" * 100,
    "BOM then JSON": b'\xef\xbb\xbf{"refresh_token": "x"}',
    "trailing garbage": b'{"refresh_token": "x"} trailing',
}


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS, ids=ENDPOINT_IDS)
async def test_malformed_json_bodies_get_a_4xx_problem(api: Api, method: str, path: str) -> None:
    send = await _sender(api)
    for name, body in BAD_BODIES.items():
        response = await send(method, path, content=body, headers=JSON)
        assert_client_error(response, name)
        if response.status_code == 422:
            assert_problem(response, 422, "validation_error")


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b'{"username": "' + b"[" * 10_000 + b'"}', b"\xff\xfe"],
    ids=["not JSON", "array", "deep string", "invalid UTF-8"],
)
async def test_register_with_a_malformed_body_is_422_validation_error(
    api: Api, body: bytes
) -> None:
    response = await api.client.post(USERS, content=body, headers=JSON)
    assert_problem(response, 422, "validation_error")


async def test_deeply_nested_json_is_422_and_the_app_keeps_serving(api: Api) -> None:
    body = b'{"email": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    response = await api.client.post(USERS, content=body, headers=JSON)
    assert_problem(response, 422, "validation_error")
    assert (await api.client.get("/health/live")).status_code == 200


CONTENT_TYPES = [
    "text/plain",
    "application/xml",
    "application/octet-stream",
    "image/png",
    "multipart/form-data; boundary=nothing-here",
    "application/x-www-form-urlencoded",
    "application/json; charset=utf-16",
    "garbage/;;;",
    "",
]


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS, ids=ENDPOINT_IDS)
async def test_wrong_content_types_get_a_4xx_problem(api: Api, method: str, path: str) -> None:
    send = await _sender(api)
    for content_type in CONTENT_TYPES:
        response = await send(
            method,
            path,
            content=b'{"username": "ada", "password": "x"}',
            headers={"Content-Type": content_type},
        )
        assert_client_error(response, content_type)


async def test_login_json_with_a_charset_parameter_works(api: Api) -> None:
    await api.register("ada")
    response = await api.client.post(
        LOGIN,
        content=f'{{"username": "ada", "password": "{PASSWORD}"}}'.encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200, response.text


MALFORMED_FORMS = {
    "invalid UTF-8 escapes": (
        b"username=%FF%FE&password=%C3%28",
        "application/x-www-form-urlencoded",
    ),
    "NUL password": (b"username=ada&password=%00", "application/x-www-form-urlencoded"),
    "percent garbage": (b"%%%%&&&===", "application/x-www-form-urlencoded"),
    "long username": (
        b"username=" + b"a" * 5000 + b"&password=x",
        "application/x-www-form-urlencoded",
    ),
    "raw invalid bytes": (b"\xff" * 100, "application/x-www-form-urlencoded"),
    "broken multipart": (b"--b\r\nbroken", "multipart/form-data; boundary=b"),
    "multipart without boundary": (b"garbage", "multipart/form-data"),
}


async def test_malformed_login_forms_get_a_4xx_problem(api: Api) -> None:
    for name, (content, content_type) in MALFORMED_FORMS.items():
        response = await api.client.post(
            LOGIN, content=content, headers={"Content-Type": content_type}
        )
        assert_client_error(response, name)
        assert response.status_code in {401, 422}, name


# --- Body size ---------------------------------------------------------------------------


async def test_a_2_mib_body_with_content_length_is_413(api: Api) -> None:
    body = b'{"full_name": "' + b"x" * (2 * MIB) + b'"}'
    send = await _sender(api)
    for method, path in JSON_ENDPOINTS:
        response = await send(method, path, content=body, headers=JSON)
        assert response.status_code == 413, path
        assert_problem(response, 413, "payload_too_large")


async def _chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    yield b'{"full_name": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}'


async def test_a_2_mib_body_streamed_without_content_length_is_413(api: Api) -> None:
    _, tokens = await api.user_with_tokens()
    for method, path in JSON_ENDPOINTS:
        request = api.client.build_request(method, path, content=_chunks(2 * MIB), headers=JSON)
        assert "content-length" not in request.headers
        assert request.headers["transfer-encoding"] == "chunked"
        request.headers.update(bearer(tokens["access_token"]))
        response = await api.client.send(request)
        assert response.status_code == 413, path
        assert_problem(response, 413, "payload_too_large")


async def test_a_body_with_a_lying_small_content_length_is_still_cut_at_1_mib(api: Api) -> None:
    """The stream is counted even when Content-Length claims a small body."""
    request = api.client.build_request("POST", USERS, content=_chunks(2 * MIB), headers=JSON)
    del request.headers["transfer-encoding"]
    request.headers["content-length"] = "10"
    response = await api.client.send(request)
    assert_problem(response, 413, "payload_too_large")


async def test_a_body_of_exactly_1_mib_is_not_refused_for_its_size(api: Api) -> None:
    prefix, suffix = b'{"refresh_token": "', b'"}'
    body = prefix + b"x" * (MIB - len(prefix) - len(suffix)) + suffix
    assert len(body) == MIB
    response = await api.client.post(REFRESH, content=body, headers=JSON)
    assert response.status_code == 422  # too long a token, but read and judged
    assert_problem(response, 422, "validation_error")


async def test_a_body_one_byte_over_1_mib_is_413(api: Api) -> None:
    prefix, suffix = b'{"refresh_token": "', b'"}'
    body = prefix + b"x" * (MIB + 1 - len(prefix) - len(suffix)) + suffix
    assert len(body) == MIB + 1
    response = await api.client.post(REFRESH, content=body, headers=JSON)
    assert_problem(response, 413, "payload_too_large")


async def test_the_app_keeps_serving_after_a_413(api: Api) -> None:
    for _ in range(3):
        response = await api.client.post(
            USERS, content=_chunks(2 * MIB), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413
    user = await api.register("ada")
    assert user["username"] == "ada"


# --- Headers and query strings --------------------------------------------------------


async def test_a_huge_authorization_header_is_401(api: Api) -> None:
    response = await api.client.get(ME, headers=bearer("eyJ" + "A" * 100_000))
    assert_problem(response, 401, "invalid_token")


async def test_huge_or_odd_headers_do_not_break_public_endpoints(api: Api) -> None:
    headers: dict[str, Any] = {
        "User-Agent": "U" * 50_000,
        "X-Forwarded-For": ",".join(["1.2.3.4"] * 5000),
        "Accept": "application/" + "x" * 10_000,
        "Accept-Language": b"\xff\xfe",
        "Cookie": "a=" + "b" * 50_000,
        "X-Request-ID": "r" * 50_000,
    }
    response = await api.client.get(USERS, headers=headers)
    assert response.status_code == 200
    response = await api.client.post(
        USERS,
        json={"email": "ada@example.com", "username": "ada", "password": PASSWORD},
        headers=headers,
    )
    assert response.status_code == 201
    response = await api.client.post(
        LOGIN, data={"username": "ada", "password": PASSWORD}, headers=headers
    )
    assert response.status_code == 200


ABSURD_QUERIES = [
    "page=10000000000000000000000000000000",
    "size=-1",
    "page=abc",
    "page=%00",
    "page=1e3",
    "page=0x10",
    "page=-0",
    "page=" + "9" * 5000,
    "page=%FF%FE",
    "size=%E2%80%8B5",
]


async def test_absurd_query_values_are_422(api: Api) -> None:
    for query in ABSURD_QUERIES:
        response = await api.client.get(f"{USERS}?{query}")
        assert response.status_code == 422, (query, response.text)
        assert_problem(response, 422, "validation_error")


ODD_QUERIES = [
    "page=1&page=2",
    "unknown=1",
    "size=1.0",
    "page=+1",
    "page=%201",
    "&&&",
    "size",
    "=1",
    "page=01",
]


async def test_odd_but_harmless_query_strings_never_5xx(api: Api) -> None:
    for query in ODD_QUERIES:
        response = await api.client.get(f"{USERS}?{query}")
        assert response.status_code < 500, query
        if response.status_code != 200:
            assert_client_error(response, query)


async def test_a_huge_query_string_never_5xx(api: Api) -> None:
    response = await api.client.get(f"{USERS}?{'x=1&' * 10_000}page=1")
    assert response.status_code < 500


ODD_PATHS = [
    "/api/v1/users/%00",
    "/api/v1/users/%FF",
    "/api/v1/users/" + "a" * 10_000,
    "/api/v1/auth/sessions/%00",
    "/api/v1/../../etc/passwd",
    "/docs/static/../../../../etc/passwd",
    "/docs/static/%2e%2e/%2e%2e/etc/passwd",
    "/docs/static/..%2f..%2f..%2fetc%2fpasswd",
]


async def test_odd_paths_never_5xx_nor_escape_the_static_directory(api: Api) -> None:
    for path in ODD_PATHS:
        response = await api.client.get(path)
        assert response.status_code < 500, path
        assert b"root:" not in response.content, path
