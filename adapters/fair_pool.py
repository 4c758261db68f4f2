"""Connections lent to units of work first come, first served, and kept between them.

Why, measured (benchmarks/README.md, "One data path"): checking a connection out of
SQLAlchemy's pool and back in costs each unit of work about 60 µs of CPU (two greenlet
switches and a shielded task), a fifth of a ``GET /users/me``; and its queue, like
asyncpg's, gives a returned connection to whichever coroutine asks next rather than the
one that has waited longest, so under load a request could lose the race again and
again (p99 of 150 to 600 ms against 23 ms). Here a connection, once opened through
SQLAlchemy's engine, is lent again and again, and a returned one goes straight to the
oldest waiter. SQLAlchemy still opens, checks and closes every connection: one that
broke, or has lived ``recycle`` seconds, goes back to it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Generic, Protocol, TypeVar

C = TypeVar("C")


class Source(Protocol[C]):
    """Where the pool's connections come from and go back to."""

    async def open(self) -> C: ...

    async def close(self, conn: C) -> None: ...

    def reusable(self, conn: C) -> bool:
        """Whether ``conn`` may be lent again (alive, no transaction left open, young)."""
        ...


class FairPool(Generic[C]):
    """At most ``size`` connections, lent in the order asked for, of which ``keep_idle``
    stay open when nobody needs them, for at most ``max_idle`` seconds unused. A request
    that waits ``timeout`` seconds gives up with ``TimeoutError`` (the unit of work
    answers 503). Once closed, the pool lets every connection go as it comes back."""

    def __init__(
        self,
        source: Source[C],
        *,
        size: int,
        timeout: float,
        keep_idle: int | None = None,
        max_idle: float | None = None,
    ) -> None:
        self._source = source
        self._size = size
        self._keep_idle = size if keep_idle is None else keep_idle
        self._max_idle = max_idle
        self._timeout = timeout
        self._closed = False
        self._idle: list[tuple[C, float]] = []  # with when each came back
        self._held = 0  # opened: idle here or lent
        self._waiters: deque[asyncio.Future[C | None]] = deque()

    async def acquire(self) -> C:
        while True:
            while self._idle:
                conn, since = self._idle.pop()  # the most recently used: warm
                fresh = self._max_idle is None or time.monotonic() - since < self._max_idle
                if fresh and self._source.reusable(conn):
                    return conn
                await self._drop(conn)
            if self._held < self._size:
                self._held += 1
                try:
                    return await self._source.open()
                except BaseException:
                    self._held -= 1
                    self._wake_next()
                    raise
            handed = await self._wait()
            if handed is not None:
                return handed
            # None: a connection was dropped, so one may be opened: go round again.

    async def release(self, conn: C) -> None:
        if self._closed or not self._source.reusable(conn):
            await self._drop(conn)
        elif not self._hand_over(conn) and len(self._idle) > self._keep_idle:
            await self._drop(self._idle.pop(0)[0])  # the load has passed: the coldest goes

    async def close(self) -> None:
        """Let every idle connection go, and each lent one as it comes back."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            await self._drop(conn)

    async def _wait(self) -> C | None:
        waiter: asyncio.Future[C | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self._timeout):
                return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # Handed over just as the wait ended: pass it on, not lost.
                handed = waiter.result()
                if handed is not None:
                    self._hand_over(handed)
                else:
                    self._wake_next()
            else:
                waiter.cancel()  # skipped when its turn comes
            raise

    async def _drop(self, conn: C) -> None:
        self._held -= 1
        try:
            await self._source.close(conn)
        finally:
            self._wake_next()

    def _hand_over(self, conn: C) -> bool:
        """Give ``conn`` to the oldest waiter; whether there was one (else it idles)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        self._idle.append((conn, time.monotonic()))
        return False

    def _wake_next(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
