"""What the API does beyond the framework for speed: one module, each tuning behind a
setting, each kept only while a bench number says it earns its place
(benchmarks/README.md).

The garbage collector's thresholds (``GC_TUNING``): a request allocates a few hundred
objects, so with CPython's default (a young-generation collection every 700
allocations) a collection ran every other request and, each time one reached the old
generation, walked every object of the process: the stalls behind the API's tail
latency.

Gone: the route index over Starlette's route table. FastAPI 0.137+ keeps an included
router as one node of its own (``app.routes`` no longer lists the API's routes), and
reaching into that node would mean FastAPI's private scope keys.
"""

from __future__ import annotations

import gc

from entrypoints.settings import Settings

# Allocations between two young-generation collections, and the two older generations'
# ratios (CPython's default: 700, 10, 10).
GC_THRESHOLD = (50_000, 50, 100)


def apply_tunings(settings: Settings) -> None:
    """Once the app is built, the tunings the settings switch on."""
    if settings.gc_tuning:
        settle_garbage_collector()


def settle_garbage_collector() -> None:
    """Move what exists (modules, routes, the container) out of the collector's sight,
    and collect less often. Request objects are freed by reference counting; the
    collector only looks for cycles."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
