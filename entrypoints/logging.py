"""Structured logging for every entrypoint: one event per line, JSON outside
development, readable in development, with secrets redacted before anything is written.

Bind context (``request_id``, ``job``…) with ``structlog.contextvars.bind_contextvars``;
standard-library loggers (uvicorn, SQLAlchemy, APScheduler) go through the same pipeline.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any, Literal, TextIO

import orjson
import structlog

# Keys whose values are never written, however they were logged.
SENSITIVE_KEY = re.compile(
    r"pass(word)?|secret|token|authorization|cookie|hash|api[_-]?key|credential", re.I
)
REDACTED = "[redacted]"
# A JWT, wherever it appears inside a message.
JWT_PATTERN = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")
# A password hash (e.g. among the parameters a database error quotes).
ARGON2_PATTERN = re.compile(r"\$argon2(?:id|i|d)\$[\w$=,+/.-]*")


def redact(value: Any, key: str = "") -> Any:
    if key and SENSITIVE_KEY.search(key):
        return REDACTED
    if isinstance(value, str):
        # Both patterns start with a literal: most strings are cleared by two substring
        # tests, far cheaper than two regex scans (every field of every log line).
        if "eyJ" in value:
            value = JWT_PATTERN.sub(REDACTED, value)
        if "$argon2" in value:
            value = ARGON2_PATTERN.sub(REDACTED, value)
        return value
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


# The request being handled, for every event logged while it runs: the server's own id
# for it, and the client's X-Request-ID when it sent a sane one. Context variables set
# and reset per request (cheaper than structlog's bind/unbind on the hot path).
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
CLIENT_REQUEST_ID: ContextVar[str | None] = ContextVar("client_request_id", default=None)


def _add_request_id(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    request_id = REQUEST_ID.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
        client_request_id = CLIENT_REQUEST_ID.get()
        if client_request_id is not None:
            event_dict.setdefault("client_request_id", client_request_id)
    return event_dict


def _redact_processor(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # uvicorn duplicates its message with terminal colour codes; one copy is enough.
    event_dict.pop("color_message", None)
    for key in list(event_dict):
        event_dict[key] = redact(event_dict[key], "" if key == "event" else key)
    return event_dict


def configure_logging(
    level: str = "INFO",
    fmt: Literal["console", "json"] = "console",
    stream: TextIO | None = None,
) -> None:
    """Route structlog and the standard library's logging to ``stream`` (stderr).

    structlog events are rendered by structlog itself and written as one line: no
    ``LogRecord`` round trip, and an event below the level costs one comparison (the
    access log runs on every request; benchmarks/README.md). Standard-library records
    (uvicorn, SQLAlchemy, APScheduler) go through the same processors and renderer.
    """
    out = stream or sys.stderr
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Tracebacks become text before redaction: an exception's message may quote a
        # token or, from the database driver, a statement's parameters.
        structlog.processors.format_exc_info,
        _redact_processor,
    ]
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_json)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)

    _OUTPUT.stream = out
    _OUTPUT.level = logging.getLevelName(level)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=_FilteringLogger,
        logger_factory=_line_writer,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's access log is replaced by our own request event.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").handlers[:] = []
    logging.getLogger("uvicorn.access").propagate = False
    # SQLAlchemy logs statements at INFO and drivers log parameters (emails, hashes) at
    # DEBUG: neither belongs in the service's log.
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    for driver in ("aiosqlite", "asyncpg"):
        logging.getLogger(driver).setLevel(max(logging.INFO, root.level))


class _Output:
    """Where structlog's events go and from which level. Loggers are cached on first use
    (often at import, before ``configure_logging``), so both are read on every event."""

    def __init__(self) -> None:
        self.stream: TextIO = sys.stderr
        self.level = logging.INFO
        self.lock = threading.Lock()


_OUTPUT = _Output()


class _LineWriter:
    """The logger structlog wraps: writes each rendered event as one line."""

    def __init__(self, name: str) -> None:
        self.name = name  # for ``add_logger_name``

    def msg(self, message: str) -> None:
        with _OUTPUT.lock:
            try:
                _OUTPUT.stream.write(message + "\n")
                _OUTPUT.stream.flush()
            except (OSError, ValueError):  # a closed or broken stream: as stdlib logging,
                pass  # a log line is never worth failing the request it describes

    debug = info = warning = error = critical = msg


class _FilteringLogger(structlog.BoundLoggerBase):
    """structlog's bound logger with the level checked first: an event below it costs
    one comparison (the access log is asked for on every request)."""

    def _at(self, level: int, method: str, event: str, args: tuple[Any, ...], kw: Any) -> Any:
        if level < _OUTPUT.level:
            return None
        return self._proxy_to_logger(method, event % args if args else event, **kw)

    def debug(self, event: str, *args: Any, **kw: Any) -> Any:
        return self._at(logging.DEBUG, "debug", event, args, kw)

    def info(self, event: str, *args: Any, **kw: Any) -> Any:
        return self._at(logging.INFO, "info", event, args, kw)

    def warning(self, event: str, *args: Any, **kw: Any) -> Any:
        return self._at(logging.WARNING, "warning", event, args, kw)

    def error(self, event: str, *args: Any, **kw: Any) -> Any:
        return self._at(logging.ERROR, "error", event, args, kw)

    def exception(self, event: str, *args: Any, **kw: Any) -> Any:
        kw.setdefault("exc_info", True)
        return self._at(logging.ERROR, "error", event, args, kw)

    def critical(self, event: str, *args: Any, **kw: Any) -> Any:
        return self._at(logging.CRITICAL, "critical", event, args, kw)


def _line_writer(*args: Any) -> _LineWriter:
    return _LineWriter(str(args[0]) if args else "")


def _json(event: Any, **kwargs: Any) -> str:
    # orjson: several times faster than the standard library's encoder, same output
    # shape; whatever it cannot encode becomes its ``repr`` (structlog's fallback).
    return orjson.dumps(event, default=kwargs.get("default", repr)).decode()


def logs_at(level: int) -> bool:
    """Whether an event of ``level`` would be written: a caller on the hot path asks
    before it builds the event."""
    return level >= _OUTPUT.level


def get_logger(name: str) -> Any:
    """A structlog logger whose events carry ``logger=name``, like the standard
    library's records."""
    return structlog.get_logger(name)
