"""The token endpoint as OAuth2 clients expect it (RFC 6749): its request forms, and
its errors with the ``error`` member of section 5.2 beside the problem document.

Stock clients (Authlib, requests-oauthlib) tell a failure from a token by that member
alone: without it, a wrong password's problem document would be taken as the token.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from entrypoints.http.problems import PROBLEM_JSON

# The problem codes of the token endpoint, as RFC 6749 names them; any other failure
# (a malformed body, a limit, the service away) is ``invalid_request``.
OAUTH2_ERRORS = {
    "invalid_credentials": "invalid_grant",
    "invalid_token": "invalid_grant",
    "unsupported_grant_type": "unsupported_grant_type",
    # Not one of section 5.2's, as section 8.5 allows: the password was right, and the
    # client goes on with the problem's ``mfa_token``.
    "mfa_required": "mfa_required",
}


class OAuth2TokenRoute(APIRoute):
    """A route whose error responses also carry the OAuth2 ``error`` member. Every
    error is rendered by the app's own exception handlers, as anywhere else."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_with_oauth2_errors(request: Request) -> Response:
            try:
                return await handle(request)
            except Exception as exc:
                rendered = await _render(request, exc)
                if rendered is None:
                    raise
                return _with_error_member(rendered)

        return handle_with_oauth2_errors


async def _render(request: Request, exc: Exception) -> Response | None:
    """The response the app's exception handler for ``exc`` makes, if it has one."""
    handlers: dict[Any, Any] = request.app.exception_handlers
    for kind in type(exc).__mro__:
        handler = handlers.get(kind)
        if handler is not None:
            response = handler(request, exc)
            if inspect.isawaitable(response):
                response = await response
            assert isinstance(response, Response)
            return response
    return None


def _with_error_member(response: Response) -> Response:
    body = orjson.loads(response.body)
    body["error"] = OAUTH2_ERRORS.get(body.get("code"), "invalid_request")
    body["error_description"] = body.get("detail", "")
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return Response(
        orjson.dumps(body),
        status_code=response.status_code,
        headers=headers,
        media_type=PROBLEM_JSON,
    )
