"""Pure ASGI middleware: request ids, access log, metrics, the last-resort 500, and the
body size limit. Pure ASGI rather than BaseHTTPMiddleware: cheaper, and streaming-safe."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from entrypoints.http.problems import internal_error, problem
from entrypoints.logging import get_logger
from entrypoints.metrics import HTTP_LATENCY, HTTP_REQUESTS

logger = get_logger("http")
REQUEST_ID_HEADER = b"x-request-id"
SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")
MAX_BODY_BYTES = 1024 * 1024
# Every response (API.md, "Response headers"); the API's own also never cached.
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
NO_STORE = (b"cache-control", b"no-store")


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class RequestContextMiddleware:
    """Gives every request an id (the client's, if sane), echoes it in ``X-Request-ID``,
    binds it to the log context, logs one line per request, records metrics, and turns
    an unhandled exception into a 500 problem that leaks nothing."""

    def __init__(
        self, app: ASGIApp, *, client_ip: Callable[[Scope], str], access_log: bool = True
    ) -> None:
        self.app = app
        self.client_ip = client_ip
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = _header(scope, REQUEST_ID_HEADER)
        request_id = sent.decode() if sent and SANE_REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_ip"] = self.client_ip(scope)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        added = [*SECURITY_HEADERS, (REQUEST_ID_HEADER, request_id.encode())]
        api = scope["path"].startswith("/api/")
        status = 500
        started = False
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = [*message.get("headers", []), *added]
                if api and not any(key.lower() == b"cache-control" for key, _ in headers):
                    headers.append(NO_STORE)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception(
                "unhandled error", method=scope["method"], path=_printable(scope["path"])
            )
            if not started:
                await internal_error(request_id)(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = _route(scope)
            HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
            HTTP_LATENCY.labels(scope["method"], route, str(status)).observe(elapsed)
            if self.access_log:
                logger.info(
                    "request",
                    method=scope["method"],
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                    client=state["client_ip"],
                )
            structlog.contextvars.unbind_contextvars("request_id")


class UnhandledErrorMiddleware:
    """Turns an unhandled exception into the 500 problem (with the request id), logged
    with its traceback. It sits inside the CORS middleware, so an allowed origin can
    read the 500 too; ``RequestContextMiddleware`` remains the last resort outside."""

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


def _route(scope: Scope) -> str:
    # The route template, not the raw path: bounded label cardinality, no ids in logs.
    route: Any = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


class BodySizeLimitMiddleware:
    """Refuses bodies over ``max_bytes`` with 413, before they are read whole: at once
    when ``Content-Length`` says so, otherwise as soon as the stream passes the limit."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return

        received = 0
        rejected = False

        async def limited_receive() -> Message:
            nonlocal received, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    rejected = True
                    await self._too_large(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not rejected:  # once the 413 is out, the app has nothing more to say
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not rejected:
                raise

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            413,
            "payload_too_large",
            "The request body is larger than 1 MiB.",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
