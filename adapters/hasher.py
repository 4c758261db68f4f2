"""Password hashing: argon2id in a bounded pool of worker threads."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Any

import argon2

from domain.errors import Overloaded
from domain.ports import PasswordHasher


class Argon2Hasher(PasswordHasher):
    """argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane).

    Hashing runs in a small dedicated thread pool: argon2 releases the GIL, so the
    event loop keeps serving, and at most ``max_concurrency`` hashes (each holding
    ``memory_cost`` KiB) run at once, whatever the number of logins waiting.
    """

    def __init__(
        self,
        *,
        time_cost: int = 2,
        memory_cost: int = 19_456,
        parallelism: int = 1,
        max_concurrency: int | None = None,
        max_waiting: int | None = None,
    ) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=argon2.Type.ID,
        )
        workers = max_concurrency or min(4, os.cpu_count() or 1)
        # Past this many hashes running or queued, a new one is refused at once: a
        # flood of hashing requests must not delay everybody's login without end.
        self._capacity = workers + (
            WAITING_PER_WORKER * workers if max_waiting is None else max_waiting
        )
        self._in_flight = 0
        self._executor = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="argon2", initializer=_yield_to_event_loop
        )

    @cached_property
    def _dummy_hash(self) -> str:
        return self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return str(await self._run(self._hasher.hash, password))

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return bool(await self._run(self._verify, password_hash, password))

    def _verify(self, password_hash: str | None, password: str) -> bool:
        try:
            matched = self._hasher.verify(password_hash or self._dummy_hash, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False
        return matched and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except argon2.exceptions.InvalidHashError:
            return True

    async def _run(self, fn: Any, *args: Any) -> Any:
        if self._in_flight >= self._capacity:
            raise Overloaded(retry_after=1)
        self._in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._in_flight -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _yield_to_event_loop() -> None:
    """Run this hashing thread at a lower priority (Linux schedules threads one by one):
    hashes still use every idle core, but the event loop thread is never kept waiting
    behind them, so logins do not slow down every other request."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICENESS)


HASHING_NICENESS = 10
# Hashes that may wait for a busy worker: room for a burst of logins, yet at ~50 ms a
# hash no login waits more than about 1.6 s behind a flood before it is refused.
WAITING_PER_WORKER = 32
