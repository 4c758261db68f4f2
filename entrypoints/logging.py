"""Structured logging for every entrypoint: one event per line, JSON outside
development, readable in development, with secrets redacted before anything is written.

Bind context (``request_id``, ``job``…) with ``structlog.contextvars.bind_contextvars``;
standard-library loggers (uvicorn, SQLAlchemy, APScheduler) go through the same pipeline.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

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
        return ARGON2_PATTERN.sub(REDACTED, JWT_PATTERN.sub(REDACTED, value))
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


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
    """Route structlog and the standard library's logging to ``stream`` (stderr)."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        # Tracebacks become text before redaction: an exception's message may quote a
        # token or, from the database driver, a statement's parameters.
        structlog.processors.format_exc_info,
        _redact_processor,
    ]
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)

    structlog.configure(
        # Events below the level are dropped before any processing.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
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


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)
