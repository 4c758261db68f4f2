"""ContainerServices: use cases built from the ports their constructors name."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from application.admin import GetUser
from application.auth import Authenticate, ListSessions
from application.users import ListUsers
from domain.ports import Clock, UowFactory
from entrypoints.container import build_services
from entrypoints.settings import Settings


class Reads:
    def __init__(self, reader: UowFactory, clock: Clock) -> None:
        self.reader = reader
        self.clock = clock


class Writes:
    def __init__(self, uow: UowFactory) -> None:
        self.uow = uow


class NeedsWhatNobodyHas:
    def __init__(self, uow: UowFactory, oracle: object) -> None: ...


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'app.db'}",
        secret_key="k" * 64,
    )


async def test_a_reader_gets_read_only_units_and_a_writer_transactions(settings: Settings) -> None:
    services = build_services(settings)
    try:
        reads, writes = services.get(Reads), services.get(Writes)

        assert services.get(Reads) is reads  # one of each
        assert reads.clock is services.get(Clock)
        assert reads.reader()._read_only  # type: ignore[attr-defined]
        assert not writes.uow()._read_only  # type: ignore[attr-defined]
        with pytest.raises(TypeError, match="oracle"):
            services.get(NeedsWhatNobodyHas)
    finally:
        await services.close()


@pytest.mark.parametrize("use_case", [Authenticate, ListSessions, ListUsers, GetUser])
def test_the_use_cases_that_only_read_ask_for_a_reader(use_case: type) -> None:
    # A reader costs one round trip per query; a unit of work three (BEGIN, the query,
    # ROLLBACK): the hot paths read this way.
    assert "reader" in inspect.signature(use_case).parameters
