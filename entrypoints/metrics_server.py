"""Prometheus ``/metrics`` on an address and port of their own, served from a thread by
prometheus-client's WSGI app: the API (``METRICS_PORT``) and the job runner
(``JOBS_METRICS_PORT``) both serve theirs this way."""

from __future__ import annotations

import ipaddress
import socket
import threading
from socketserver import ThreadingMixIn
from typing import Any, NamedTuple
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import make_wsgi_app

from entrypoints.settings import InvalidSettings


class _QuietHandler(WSGIRequestHandler):
    """No line on stderr per scrape: the process's own logs say what matters."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _MetricsHTTPServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a scrape in flight never holds up the process's exit

    def __init__(self, host: str, port: int, *, shared: bool) -> None:
        # Read by ``TCPServer.__init__`` when it creates and binds the socket.
        ip = ipaddress.ip_address(host)
        self.address_family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        # SO_REUSEPORT: every worker process of ``app serve --workers N`` binds the same
        # port (the kernel spreads the scrapes over them); a port held by any other
        # program still cannot be bound.
        self.allow_reuse_port = shared
        super().__init__((host, port), _QuietHandler)


class MetricsServer(NamedTuple):
    """A running metrics server and the thread serving it."""

    server: WSGIServer
    thread: threading.Thread

    def close(self) -> None:
        """Stop serving and release the port (blocks up to half a second)."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_metrics(host: str, port: int, *, setting: str, shared: bool = False) -> MetricsServer:
    """Serve the default registry's metrics on ``host:port`` from a daemon thread.
    ``shared``: other processes of the same user may bind the port too. A port that
    cannot be bound is ``InvalidSettings`` naming ``setting``, the variable that chose it."""
    try:
        server = _MetricsHTTPServer(host, port, shared=shared)
    except OSError as exc:
        raise InvalidSettings(
            f"invalid configuration: {setting}: cannot listen on port {port}"
            f" ({exc.strerror or exc})"
        ) from exc
    server.set_app(make_wsgi_app())
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return MetricsServer(server, thread)
