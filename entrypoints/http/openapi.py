"""The OpenAPI document (its operation ids, its error responses) and Swagger UI served
from a package.

A route's error responses come from what it calls (``errors_of``): the domain errors
its use cases declare in ``raises``, each documented with the status its category gets,
plus what the HTTP layer itself answers (``BODY``, ``BEARER``…). So the documented
statuses are the ones the app answers with, and a new error is documented where it can
occur as soon as its use case declares it.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any, TypeAlias

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from application.auth import Authenticate, RecentAuthentication
from domain.errors import (
    DomainError,
    Forbidden,
    InsufficientScope,
    LimitsUnavailable,
    RateLimited,
    ServiceUnavailable,
)
from entrypoints.http.problems import HTTP_CODES, PROBLEM_JSON, status_of
from entrypoints.http.schemas import openapi_components

DOCS_STATIC = "/docs/static"
# What every problem body holds (``request_id`` only on a 500; ``errors`` on a 422).
PROBLEM_FIELDS = ("type", "title", "status", "detail", "code")
_DESCRIPTIONS = {
    500: "Internal Server Error: an unexpected error (`internal_error`). Quote the"
    " `request_id` when reporting it.",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "Always `Bearer`.",
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Whole seconds to wait before trying again.",
            "schema": {"type": "integer"},
        }
    },
}


def described(use_case: type) -> str:
    """An endpoint's description: the docstring of the use case it calls."""
    return inspect.cleandoc(use_case.__doc__ or "")


def operation_id(route: APIRoute) -> str:
    """An operation's ``operationId``: its route function's name in camelCase (``log_in``
    is ``logIn``), so generated clients get readable method names."""
    first, *rest = route.name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses, as problem+json. Routes
    that call use cases use ``errors_of``, which derives the statuses."""
    return {status: _problem_entry(status) for status in statuses}


def _problem_entry(status: int, codes: Iterable[str] = ()) -> dict[str, Any]:
    schema = "ValidationProblem" if status == 422 else "Problem"
    description = _DESCRIPTIONS.get(status, HTTPStatus(status).phrase)
    if named := sorted(set(codes)):
        description += ": " + ", ".join(f"`{code}`" for code in named) + "."
    entry: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }
    if status in _HEADERS:
        entry["headers"] = _HEADERS[status]
    return entry


# What a route may name in ``errors_of``: a use case (the errors of its ``raises``), a
# domain error the route raises itself, an HTTP status the HTTP layer answers on its
# own, or a tuple of these.
ErrorSource: TypeAlias = type | int | tuple["ErrorSource", ...]

# What the HTTP layer answers by itself, to name beside a route's use cases.
BODY = (413, 422)  # a request body: over 1 MiB, or not valid
PARAMS = (422,)  # path or query parameters out of their bounds
# Every route with a bearer token (``access``): no token, or one not valid (401); a
# personal access token without the route's scope (403).
BEARER = (401, Authenticate, InsufficientScope)
# ``RecentPrincipal``: also 403 when the session's authentication is not recent.
RECENT = (*BEARER, RecentAuthentication)
SUPERUSER = (*BEARER, Forbidden)  # ``AdminReader``/``AdminWriter``: 403 for anyone else
RATE_LIMITED = (RateLimited, LimitsUnavailable)  # a limit: reached, or its store away
# The codes of the statuses the HTTP layer answers on its own.
_HTTP_LAYER_CODES = {
    **{status: code for status, (code, _detail) in HTTP_CODES.items()},
    422: "validation_error",
}


def errors_of(*sources: ErrorSource) -> dict[int | str, dict[str, Any]]:
    """A route's error ``responses``, each status with the codes it may carry:
    ``responses=errors_of(RegisterUser, BODY, RATE_LIMITED)``.

    A use case contributes every error of its ``raises``, and ``ServiceUnavailable``:
    every use case reaches the database, which may be away (503). A use case without
    ``raises`` is refused, as is an error without a category: the document is built
    from them, so it cannot promise a status the app does not answer."""
    codes: dict[int, set[str]] = {}
    for error in _errors(sources):
        if isinstance(error, int):
            codes.setdefault(error, set()).add(_HTTP_LAYER_CODES[error])
            continue
        status = status_of(error)
        if status is None:
            raise TypeError(f"{error.__qualname__} has no category: it cannot be documented")
        codes.setdefault(status, set()).add(error.code)
    return {status: _problem_entry(status, codes[status]) for status in sorted(codes)}


def _errors(sources: Iterable[ErrorSource]) -> Iterable[type[DomainError] | int]:
    for source in sources:
        if isinstance(source, tuple):
            yield from _errors(source)
        elif isinstance(source, int) or issubclass(source, DomainError):
            yield source
        else:
            raises = getattr(source, "raises", None)
            if not isinstance(raises, tuple):
                raise TypeError(
                    f"{source.__qualname__} declares no `raises`: name the domain errors"
                    " it may raise (an empty tuple for none)"
                )
            yield from raises
            yield ServiceUnavailable


def install_openapi(app: FastAPI, *, description: str) -> None:
    """Replace the generated document with one that also knows the problem schemas, and
    declares the 500 problem on every operation."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=description,
                routes=app.routes,
            )
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(_problem_schemas())
            for item in schema.get("paths", {}).values():
                for operation in item.values():
                    operation["responses"].setdefault("500", problems(500)[500])
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _problem_schemas() -> dict[str, Any]:
    # Their models give ``type`` a default, which pydantic leaves out of ``required``;
    # every problem is sent with it.
    components = openapi_components()
    components["Problem"]["required"] = list(PROBLEM_FIELDS)
    components["ValidationProblem"]["required"] = [*PROBLEM_FIELDS, "errors"]
    return components


def install_docs(app: FastAPI) -> None:
    """Swagger UI at /docs with its JavaScript and CSS from the swagger-ui-bundle
    package: the page works on a machine without internet access."""
    app.mount(DOCS_STATIC, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), "docs")
    oauth2_redirect = "/docs/oauth2-redirect"

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url=f"{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_STATIC}/favicon-32x32.png",
            oauth2_redirect_url=oauth2_redirect,
            swagger_ui_parameters={"persistAuthorization": True},
        )

    async def redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    app.add_api_route("/docs", docs, include_in_schema=False)
    app.add_api_route(oauth2_redirect, redirect, include_in_schema=False)
