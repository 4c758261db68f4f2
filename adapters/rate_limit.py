"""Rate limits over the ``limits`` library: in memory, or shared through Redis."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from domain.ports import FailedLoginCounter, RateLimits

logger = logging.getLogger(__name__)


def async_storage_uri(uri: str) -> str:
    """``memory://`` and ``redis://…`` as configured, in the async form ``limits`` wants."""
    return uri if uri.startswith("async+") else f"async+{uri}"


class RateLimiter:
    """Checks and counts hits against limits such as ``"5/minute"``.

    If the shared storage is unreachable the request is let through and the failure
    logged: a limiter outage must not take the whole API down with it.
    """

    def __init__(self, storage_uri: str = "memory://", *, enabled: bool = True) -> None:
        self.enabled = enabled
        uri = async_storage_uri(storage_uri)
        options: dict[str, str | float | bool] = {}
        if urlsplit(uri).scheme in {"async+redis", "async+rediss"}:
            options = {"implementation": "redispy", "socket_timeout": 1.0}
        storage = storage_from_string(uri, **options)
        assert isinstance(storage, Storage)
        self._storage = storage
        self._strategy = MovingWindowRateLimiter(self._storage)

    async def hit(self, limit: RateLimitItem, *key: str) -> int | None:
        """Count one hit; return the seconds to wait if the limit was already reached."""
        if not self.enabled:
            return None
        try:
            if await self._strategy.hit(limit, *key):
                return None
            return await self._retry_after(limit, *key)
        except Exception:
            logger.warning("rate limit storage unavailable; request let through", exc_info=True)
            return None

    async def clear(self, limit: RateLimitItem, *key: str) -> None:
        """Forget every hit counted against ``limit`` for ``key``."""
        if not self.enabled:
            return
        try:
            await self._strategy.clear(limit, *key)
        except Exception:
            logger.warning("rate limit storage unavailable; nothing cleared", exc_info=True)

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
