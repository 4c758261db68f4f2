"""The one last-resort handler: an unhandled exception becomes the 500 problem."""

from __future__ import annotations

import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from entrypoints.http.problems import internal_error
from entrypoints.logging import get_logger

logger = get_logger("http")


class UnhandledErrorMiddleware:
    """The one last resort: an unhandled exception becomes the 500 problem (with the
    request id and nothing else), logged with its traceback. It sits inside the CORS
    middleware, so an allowed origin can read the 500 too. An exception after the
    response started is re-raised: the server then ends the connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if started:
                raise
            logger.exception(
                "unhandled error", method=scope["method"], path=_printable(scope["path"])
            )
            request_id = scope.get("state", {}).get("request_id") or uuid.uuid4().hex
            await internal_error(request_id)(scope, receive, send)


def _printable(path: str) -> str:
    """The raw path with control characters (NUL, newlines) escaped: one log line each."""
    return path if path.isprintable() else path.encode("unicode_escape").decode("ascii")
