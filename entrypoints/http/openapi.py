"""The OpenAPI document (its operation ids, its error responses) and Swagger UI served
from a package."""

from __future__ import annotations

import inspect
from http import HTTPStatus
from typing import Any

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from entrypoints.http.problems import PROBLEM_JSON
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
    """OpenAPI ``responses`` entries for these error statuses, as problem+json."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        schema = "ValidationProblem" if status == 422 else "Problem"
        entry: dict[str, Any] = {
            "description": _DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
            "content": {PROBLEM_JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        }
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        out[status] = entry
    return out


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
