"""Pure ASGI middleware, one module each: the request context (id, security headers,
access log, metrics), the one last-resort 500, the body size limit, the Host check, and
one line for a setting that stops the start. Pure ASGI rather than BaseHTTPMiddleware:
cheaper, and streaming-safe."""

from entrypoints.http.middleware.allowed_hosts import AllowedHostsMiddleware
from entrypoints.http.middleware.body_limit import MAX_BODY_BYTES, BodySizeLimitMiddleware
from entrypoints.http.middleware.request_context import RequestContextMiddleware
from entrypoints.http.middleware.startup_errors import StartupErrorsMiddleware
from entrypoints.http.middleware.unhandled_errors import UnhandledErrorMiddleware

__all__ = [
    "MAX_BODY_BYTES",
    "AllowedHostsMiddleware",
    "BodySizeLimitMiddleware",
    "RequestContextMiddleware",
    "StartupErrorsMiddleware",
    "UnhandledErrorMiddleware",
]
