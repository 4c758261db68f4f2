"""Routing by an index of the API's fixed paths, with Starlette's own semantics.

Starlette tries every route's pattern in turn until one matches: a request for a route
near the end of the table (``/api/v1/users/me`` is the 26th) first fails two dozen
regular expressions, a sizeable share of a fast request (benchmarks/README.md). The
index maps each fixed path (one without parameters) to the routes that can match it, in
table order, so the first full match is the one the scan would find. Everything else —
paths with parameters, 404, 405, lifespan — goes to
Starlette's scan unchanged.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Match, Router
from starlette.types import ASGIApp, Receive, Scope, Send


class IndexedRouter:
    """Sits in place of ``router.middleware_stack`` (the router's own ``app`` when it has
    no middleware); rebuilds its index when routes are added or removed (routes are
    added, not swapped in place, by FastAPI's decorators and ``include_router``)."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.scan: ASGIApp = router.middleware_stack
        self._index: dict[str, tuple[BaseRoute, ...]] = {}
        self._indexed: tuple[int, int] = (0, -1)  # the table's id and length

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route in self._candidates(_route_path(scope)):
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.setdefault("router", self.router)
                    scope["route"] = route
                    scope.update(child_scope)
                    await route.handle(scope, receive, send)
                    return
        await self.scan(scope, receive, send)

    def _candidates(self, path: str) -> tuple[BaseRoute, ...]:
        table = self.router.routes
        if (id(table), len(table)) != self._indexed:
            routes = tuple(table)
            fixed = {found for route in routes if (found := _fixed_path(route)) is not None}
            self._index = {each: _matching(routes, each) for each in fixed}
            self._indexed = (id(table), len(table))
        return self._index.get(path, ())


def install_route_index(router: Router) -> None:
    """Route ``router``'s requests through the index (call once, after its middleware)."""
    router.middleware_stack = IndexedRouter(router)


def _route_path(scope: Scope) -> str:
    """The path the routes match: the request's path less the app's ``root_path`` (as
    Starlette's router reads it; its helper is private)."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if not root_path or not path.startswith(root_path):
        return path
    if path == root_path:
        return ""
    return path[len(root_path) :] if path[len(root_path)] == "/" else path


def _fixed_path(route: BaseRoute) -> str | None:
    path = getattr(route, "path", None)
    if isinstance(path, str) and "{" not in path and getattr(route, "path_regex", None):
        return path
    return None


def _matching(routes: tuple[BaseRoute, ...], path: str) -> tuple[BaseRoute, ...]:
    # Every route whose pattern accepts the path, whatever its methods: the first that
    # also accepts the method is the scan's first full match. Routes without a pattern
    # (a host, say) could match anything, so their paths are not indexed.
    if any(getattr(route, "path_regex", None) is None for route in routes):
        return ()
    return tuple(route for route in routes if route.path_regex.match(path))  # type: ignore[attr-defined]
