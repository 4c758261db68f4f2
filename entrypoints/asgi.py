"""The API for uvicorn: ``uvicorn --factory entrypoints.asgi:create_app``.

Part of the composition root: it reads the settings and builds the services that the
HTTP adapter runs on.
"""

from __future__ import annotations

import sys

from fastapi import FastAPI

from entrypoints.container import build_services
from entrypoints.http import app
from entrypoints.http.tuning import apply_tunings
from entrypoints.logging import configure_logging
from entrypoints.settings import InvalidSettings, load_settings


def create_app() -> FastAPI:
    """The API with its settings read from the environment."""
    try:
        settings = load_settings()
    except InvalidSettings as exc:
        # uvicorn would print a traceback; the operator needs one line.
        print(exc, file=sys.stderr)
        raise SystemExit(1) from None
    configure_logging(settings.log_level, settings.effective_log_format)
    api = app.create_app(settings, build_services(settings))
    apply_tunings(settings)
    return api
