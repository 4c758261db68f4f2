"""The request context: an id per request, the security headers, the access log line
and the metrics."""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from domain.audit import Actor, ActorType, act_as, stop_acting
from entrypoints.http.middleware.headers import header
from entrypoints.logging import CLIENT_REQUEST_ID, REQUEST_ID, get_logger, logs_at
from entrypoints.metrics import http_request_metrics

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
    """Gives every request an id of the server's own, echoes the client's (if sane, else
    the server's) in ``X-Request-ID``
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
        # The server's own id names the request in the logs and the audit trail; the
        # client's is echoed and logged beside it, never in its place (a client may send
        # any id, another request's too).
        request_id = secrets.token_hex(16)
        client_request_id = sent.decode() if sent and SANE_REQUEST_ID.fullmatch(sent) else None
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_ip"] = self.client_ip(scope)
        logged_as = REQUEST_ID.set(request_id)
        client_logged_as = CLIENT_REQUEST_ID.set(client_request_id)
        echoed = client_request_id or request_id
        added = [*SECURITY_HEADERS, (REQUEST_ID_HEADER, echoed.encode())]
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
        # once a token says who: ``authenticated``).
        acting = act_as(
            Actor(
                ActorType.USER,
                request_id=request_id,
                client_request_id=client_request_id,
                ip=state["client_ip"],
            )
        )
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            stop_acting(acting)
            elapsed = time.perf_counter() - start
            route = _route(scope)
            http_request_metrics(scope["method"], route, status).record(elapsed)
            if self.access_log and logs_at(logging.INFO):
                logger.info(
                    "request",
                    method=scope["method"],
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                    client=state["client_ip"],
                )
            CLIENT_REQUEST_ID.reset(client_logged_as)
            REQUEST_ID.reset(logged_as)


def _route(scope: Scope) -> str:
    # The route template, not the raw path: bounded label cardinality, no ids in logs.
    route: Any = scope.get("route")
    return getattr(route, "path", None) or "unmatched"
