"""The fair pool: connections go to the oldest waiter, none is ever lost, and a wait
has an end. Against a fake source, so each interleaving is exact; every unit of work of
the other suites runs through it on SQLAlchemy's engine."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from adapters.fair_pool import FairPool


class Conn:
    def __init__(self, number: int) -> None:
        self.number = number
        self.closed = False
        self.in_transaction = False

    def is_closed(self) -> bool:
        return self.closed

    def is_in_transaction(self) -> bool:
        return self.in_transaction


class DriverPool:
    """A source: opens connections, takes them back, says which may be lent again."""

    def __init__(self) -> None:
        self.opened: list[Conn] = []
        self.returned: list[Conn] = []
        self.fail_next = False

    async def open(self) -> Any:
        await asyncio.sleep(0)
        if self.fail_next:
            self.fail_next = False
            raise OSError("connection refused")
        conn = Conn(len(self.opened))
        self.opened.append(conn)
        return conn

    async def close(self, conn: Any) -> None:
        self.returned.append(conn)

    def reusable(self, conn: Any) -> bool:
        return not conn.closed and not conn.in_transaction


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_released_connection_goes_to_the_longest_waiter() -> None:
    pool = FairPool(DriverPool(), size=1, timeout=5)
    first = await pool.acquire()
    order: list[str] = []

    async def request(name: str) -> None:
        conn = await pool.acquire()
        order.append(name)
        await pool.release(conn)

    waiting = [asyncio.create_task(request(name)) for name in ("a", "b", "c")]
    await settle()
    await pool.release(first)
    # A newcomer that asks after the release must queue behind the others.
    late = asyncio.create_task(request("late"))
    await asyncio.gather(*waiting, late)
    assert order == ["a", "b", "c", "late"]


async def test_at_most_size_connections_are_opened_and_they_are_reused() -> None:
    driver = DriverPool()
    pool = FairPool(driver, size=3, timeout=5)

    async def request() -> None:
        conn = await pool.acquire()
        await asyncio.sleep(0)
        await pool.release(conn)

    await asyncio.gather(*(request() for _ in range(50)))
    assert len(driver.opened) == 3
    assert driver.returned == []


async def test_a_wait_ends_after_the_timeout_and_leaves_nothing_behind() -> None:
    pool = FairPool(DriverPool(), size=1, timeout=0.05)
    held = await pool.acquire()
    with pytest.raises(TimeoutError):
        await pool.acquire()
    await pool.release(held)
    assert await pool.acquire() is held  # the timed-out waiter was skipped


async def test_a_connection_handed_to_a_cancelled_waiter_is_passed_on() -> None:
    pool = FairPool(DriverPool(), size=1, timeout=5)
    held = await pool.acquire()
    doomed = asyncio.create_task(pool.acquire())
    patient = asyncio.create_task(pool.acquire())
    await settle()
    await pool.release(held)  # handed to ``doomed``…
    doomed.cancel()  # …which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert await asyncio.wait_for(patient, 1) is held


async def test_broken_connections_go_back_and_a_waiter_gets_a_new_one() -> None:
    driver = DriverPool()
    pool = FairPool(driver, size=1, timeout=5)
    broken = await pool.acquire()
    waiter = asyncio.create_task(pool.acquire())
    await settle()
    broken.closed = True
    await pool.release(broken)
    fresh = await asyncio.wait_for(waiter, 1)
    assert fresh is not broken
    assert driver.returned == [broken]


async def test_a_connection_left_in_a_transaction_is_not_reused() -> None:
    driver = DriverPool()
    pool = FairPool(driver, size=2, timeout=5)
    dirty = await pool.acquire()
    dirty.in_transaction = True
    await pool.release(dirty)
    assert driver.returned == [dirty]
    assert await pool.acquire() is not dirty


async def test_an_idle_connection_closed_by_the_server_is_replaced() -> None:
    driver = DriverPool()
    pool = FairPool(driver, size=1, timeout=5)
    conn = await pool.acquire()
    await pool.release(conn)
    conn.closed = True  # the server went away meanwhile
    assert await pool.acquire() is not conn
    assert driver.returned == [conn]


async def test_a_failed_open_frees_its_place_for_the_next_request() -> None:
    driver = DriverPool()
    pool = FairPool(driver, size=1, timeout=5)
    driver.fail_next = True
    with pytest.raises(OSError, match="refused"):
        await pool.acquire()
    assert isinstance(await pool.acquire(), Conn)


async def test_close_gives_the_idle_connections_back() -> None:
    driver = DriverPool()
    pool = FairPool(driver, size=2, timeout=5)
    a, b = await pool.acquire(), await pool.acquire()
    await pool.release(a)
    await pool.release(b)
    await pool.close()
    assert sorted(c.number for c in driver.returned) == [0, 1]


async def test_beyond_keep_idle_the_coldest_idle_connection_goes_back() -> None:
    driver = DriverPool()
    pool = FairPool(driver, size=3, timeout=5, keep_idle=1)
    a, b, c = await pool.acquire(), await pool.acquire(), await pool.acquire()
    for conn in (a, b, c):
        await pool.release(conn)
    assert driver.returned == [a, b]  # one idle kept: the warmest
    assert await pool.acquire() is c


async def test_a_connection_idle_longer_than_max_idle_is_let_go() -> None:
    driver = DriverPool()
    pool = FairPool(driver, size=2, timeout=5, max_idle=0.05)
    conn = await pool.acquire()
    await pool.release(conn)
    await asyncio.sleep(0.1)  # a proxy may have dropped it meanwhile
    fresh = await pool.acquire()
    assert fresh is not conn
    assert driver.returned == [conn]


async def test_after_close_a_returned_connection_is_let_go_too() -> None:
    driver = DriverPool()
    pool = FairPool(driver, size=2, timeout=5)
    lent = await pool.acquire()
    await pool.close()
    await pool.release(lent)
    assert driver.returned == [lent]
