"""Rate limits over the ``limits`` library: in memory, or shared through Redis."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from domain.errors import LimitsUnavailable
from domain.ports import FailedLoginCounter, RateLimits

logger = logging.getLogger(__name__)

# redis-py's options: an unreachable or stalled store fails the request within about a
# second (not the OS's connect timeout). Its connection pool reconnects by itself on the
# next command once the store answers again.
REDIS_OPTIONS: dict[str, str | float | bool] = {
    "implementation": "redispy",
    "socket_connect_timeout": 1.0,
    "socket_timeout": 1.0,
}


def async_storage_uri(uri: str) -> str:
    """``memory://`` and ``redis://…`` as configured, in the async form ``limits`` wants."""
    return uri if uri.startswith("async+") else f"async+{uri}"


class OutageLog:
    """Says that the store is unreachable at most once a minute (one line, no traceback:
    every limited request fails alike during an outage), and after each such line once
    that it answers again, so that even a flapping store cannot flood the log."""

    INTERVAL = 60.0

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._last_warning = -math.inf
        self._announced = False

    def failed(self, error: StorageError) -> None:
        now = self._monotonic()
        if now - self._last_warning >= self.INTERVAL:
            self._last_warning = now
            self._announced = True
            logger.warning(
                "rate limit store unreachable (%s); limited requests are refused",
                type(error.storage_error).__name__,
            )

    def answered(self) -> None:
        if self._announced:
            self._announced = False
            logger.info("rate limit store answers again; limits apply")


class RateLimiter:
    """Checks and counts hits against limits such as ``"5/minute"``.

    Fails closed: while the storage cannot be reached a hit raises ``LimitsUnavailable``
    rather than letting the request through uncounted. ``on_store_error`` is called
    for every storage call that failed (the entrypoints count them in /metrics).
    """

    def __init__(
        self,
        storage_uri: str = "memory://",
        *,
        enabled: bool = True,
        on_store_error: Callable[[], None] = lambda: None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = enabled
        uri = async_storage_uri(storage_uri)
        options = REDIS_OPTIONS if urlsplit(uri).scheme in {"async+redis", "async+rediss"} else {}
        # The storage's own errors (redis-py's) come out as limits' StorageError.
        storage = storage_from_string(uri, wrap_exceptions=True, **options)
        assert isinstance(storage, Storage)
        self._storage = storage
        self._strategy = MovingWindowRateLimiter(self._storage)
        self._on_store_error = on_store_error
        self._outage = OutageLog(monotonic)

    async def hit(self, limit: RateLimitItem, *key: str) -> int | None:
        """Count one hit; return the seconds to wait if the limit was already reached.

        Raises ``LimitsUnavailable`` when the storage cannot be reached."""
        if not self.enabled:
            return None
        try:
            allowed = await self._strategy.hit(limit, *key)
            retry_after = None if allowed else await self._retry_after(limit, *key)
        except StorageError as exc:
            self._store_failed(exc)
            raise LimitsUnavailable from None
        self._outage.answered()
        return retry_after

    async def clear(self, limit: RateLimitItem, *key: str) -> None:
        """Forget every hit counted against ``limit`` for ``key``. Never raises: if the
        storage cannot be reached the hits are merely kept (the safe side)."""
        if not self.enabled:
            return
        try:
            await self._strategy.clear(limit, *key)
        except StorageError as exc:
            self._store_failed(exc)
            return
        self._outage.answered()

    def _store_failed(self, error: StorageError) -> None:
        self._on_store_error()
        self._outage.failed(error)

    async def _retry_after(self, limit: RateLimitItem, *key: str) -> int:
        stats = await self._strategy.get_window_stats(limit, *key)
        return max(1, math.ceil(stats.reset_time - time.time()))


class NamedRateLimits(RateLimits):
    """Limits by name (``{"login": "5/minute"}``), parsed once, over one ``RateLimiter``."""

    NAMESPACE = "ip"

    def __init__(self, limiter: RateLimiter, limits: Mapping[str, str]) -> None:
        self._limiter = limiter
        self._items = {name: parse(limit) for name, limit in limits.items()}

    def names(self) -> frozenset[str]:
        return frozenset(self._items)

    async def hit(self, name: str, key: str) -> int | None:
        return await self._limiter.hit(self._items[name], self.NAMESPACE, name, key)


class LimitsFailedLoginCounter(FailedLoginCounter):
    """Failed password checks per account, e.g. ``10/15minutes``: after that many in the
    window the account must wait for the oldest one to age out.

    Each check takes its slot up front, in one atomic step of the storage, so parallel
    attempts cannot all slip past the limit while their hashes are being verified; a
    right password forgives the account's failures."""

    NAMESPACE = "login-failures"

    def __init__(self, limiter: RateLimiter, limit: str) -> None:
        self._limiter = limiter
        self._limit = parse(limit)

    async def acquire(self, account: str) -> int | None:
        return await self._limiter.hit(self._limit, self.NAMESPACE, account)

    async def succeeded(self, account: str) -> None:
        await self._limiter.clear(self._limit, self.NAMESPACE, account)
