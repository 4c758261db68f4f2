"""The API for uvicorn: ``uvicorn --factory entrypoints.asgi:create_app``.

Part of the composition root: it reads the settings and builds the services that the
HTTP adapter runs on.
"""

from __future__ import annotations

import gc
import sys

from fastapi import FastAPI

from entrypoints.container import build_services
from entrypoints.http import app
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
    settle_garbage_collector()
    return api


# Objects allocated between two young-generation collections (CPython's default: 700).
# A request allocates a few hundred, so by default a collection ran every other request
# and, each time one reached the old generation, walked every object of the process:
# the stalls behind the API's tail latency (benchmarks/README.md).
GC_THRESHOLD = (50_000, 50, 100)


def settle_garbage_collector() -> None:
    """Once the app is built: move what exists (modules, routes, the container) out of
    the collector's sight, and collect less often. Request objects are freed by
    reference counting; the collector only looks for cycles."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
