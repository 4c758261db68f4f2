"""The request context: an id per request, the security headers, the access log line
and the metrics."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from domain.audit import Actor, ActorType, acting_as
from entrypoints.http.middleware.headers import header
from entrypoints.logging import get_logger
from entrypoints.metrics import HTTP_LATENCY, HTTP_REQUESTS

logger = get_logger("http")
REQUEST_ID_HEADER = b"x-request-id"
SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")
# Every response (the HTTP contract: response headers); the API's own also never cached.
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
NO_STORE = (b"cache-control", b"no-store")


class RequestContextMiddleware:
    """Gives every request an id (the client's, if sane), echoes it in ``X-Request-ID``
    with the security headers, binds it to the log context, logs one line per request
    and records its metrics. Errors are ``UnhandledErrorMiddleware``'s, inside."""

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
        sent = header(scope, REQUEST_ID_HEADER)
        request_id = sent.decode() if sent and SANE_REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_ip"] = self.client_ip(scope)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        added = [*SECURITY_HEADERS, (REQUEST_ID_HEADER, request_id.encode())]
        api = scope["path"].startswith("/api/")
        status = 500  # unless a response starts: the server then ends the connection
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), *added]
                if api and not any(key.lower() == b"cache-control" for key, _ in headers):
                    headers.append(NO_STORE)
                message["headers"] = headers
            await send(message)

        # Whatever the request changes is recorded as done by its client (by its user,
        # once a token says who: ``current_principal``).
        actor = Actor(ActorType.USER, request_id=request_id, ip=state["client_ip"])
        try:
            with acting_as(actor):
                await self.app(scope, receive, send_with_id)
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


def _route(scope: Scope) -> str:
    # The route template, not the raw path: bounded label cardinality, no ids in logs.
    route: Any = scope.get("route")
    return getattr(route, "path", None) or "unmatched"
