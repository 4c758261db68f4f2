"""The Host header check (``ALLOWED_HOSTS``): 400 for a host this service does not answer.

Starlette's ``TrustedHostMiddleware`` does the same check but answers in plain text (or
redirects to ``www.``); every error of this API is problem+json, so the check is here.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from entrypoints.http.middleware.headers import header
from entrypoints.http.problems import problem


class AllowedHostsMiddleware:
    """Refuses every request whose ``Host`` (without its port, case-insensitively) is not
    one of ``allowed``: an exact host, or ``*.example.com`` for any subdomain of
    ``example.com`` (not ``example.com`` itself). A request without ``Host`` is refused.
    Add it only when some host is not allowed: ``["*"]`` needs no check."""

    def __init__(self, app: ASGIApp, *, allowed: Iterable[str]) -> None:
        self.app = app
        entries = [entry.lower().rstrip(".") for entry in allowed]
        self.exact = frozenset(entry for entry in entries if not entry.startswith("*."))
        self.suffixes = tuple(entry[1:] for entry in entries if entry.startswith("*."))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.allows(scope):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # before accept: a 403
        else:
            response = problem(
                400, "invalid_host", "The Host header is not one this service answers."
            )
            await response(scope, receive, send)

    def allows(self, scope: Scope) -> bool:
        sent = header(scope, b"host")
        if sent is None:
            return False
        host = _without_port(sent.decode("latin-1").lower()).rstrip(".")
        return host in self.exact or host.endswith(self.suffixes)


def _without_port(host: str) -> str:
    if host.startswith("["):  # an IPv6 literal, such as [::1]:8000; kept in its brackets
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0]
