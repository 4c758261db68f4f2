"""The composition root: every use case declared once in ``UseCases``, resolved by type,
its wiring checked at start-up, overridable with the library's own ``override`` at any
time, and what the adapters hold released by ``shutdown_resources``."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from fastapi import APIRouter

from adapters.hasher import Argon2Hasher
from application.admin import GetUser
from application.auth import Authenticate, ListSessions, LogIn
from application.tokens import TokenPolicy
from application.users import ListUsers, RegisterUser
from domain.ports import Clock, PasswordHasher, UowFactory
from entrypoints.container import (
    ContainerServices,
    UnknownDependency,
    WiringError,
    build_services,
    check_wiring,
    create_container,
    use_case_providers,
)
from entrypoints.http import app as app_module
from entrypoints.http.app import create_app
from entrypoints.http.dependencies import use
from entrypoints.http.routes import ROUTERS
from entrypoints.settings import Settings
from tests.fakes import FakeClock, FakeHasher


class NotePolicy:
    """A policy of a new resource, which a use case must not be handed another for."""


class AddNote:
    def __init__(self, uow: UowFactory, policy: NotePolicy) -> None:
        self.policy = policy


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'app.db'}",
        secret_key="k" * 64,
    )


@pytest.fixture
def services(settings: Settings) -> ContainerServices:
    return build_services(settings)


async def test_use_cases_resolve_by_type_with_the_ports_declared_for_them(
    services: ContainerServices,
) -> None:
    log_in = services.get(LogIn)

    assert isinstance(log_in, LogIn)
    assert log_in._clock is services.get(Clock)  # the one clock of the process
    assert isinstance(log_in._policy, TokenPolicy)
    assert services.get(Authenticate)._reader()._read_only  # type: ignore[attr-defined]
    assert not services.get(RegisterUser)._uow()._read_only  # type: ignore[attr-defined]
    await services.close()


async def test_every_declared_use_case_builds(services: ContainerServices) -> None:
    built = [provider() for provider in use_case_providers(services.container)]

    assert len(built) >= 39
    assert len({type(use_case) for use_case in built}) == len(built)  # one provider each
    await services.close()


async def test_an_override_takes_effect_after_first_use_too(services: ContainerServices) -> None:
    first = services.get(RegisterUser)
    assert isinstance(first._hasher, Argon2Hasher)

    services.container.adapters.hasher.override(providers.Singleton(FakeHasher))
    services.provider(Clock).override(providers.Object(FakeClock()))

    again = services.get(RegisterUser)
    assert isinstance(again._hasher, FakeHasher)
    assert isinstance(services.get(PasswordHasher), FakeHasher)
    assert isinstance(again._clock, FakeClock)
    stand_in = object()
    services.provider(RegisterUser).override(providers.Object(stand_in))
    assert services.get(RegisterUser) is stand_in
    services.container.adapters.hasher.reset_override()
    await services.close()


def test_a_dependency_of_the_wrong_type_is_refused_at_start_up_naming_it(
    settings: Settings,
) -> None:
    container = create_container(settings)
    # A new use case wired by mistake to the token policy (the old resolver matched the
    # parameter's name, whatever its type).
    container.use_cases.container.add_note = providers.Factory(
        AddNote, uow=container.adapters.uow.provider, policy=container.adapters.token_policy
    )

    with pytest.raises(WiringError, match=r"AddNote\(policy: NotePolicy\) is given TokenPolicy"):
        check_wiring(container)


def test_a_raw_adapter_is_refused_where_a_value_was_asked_for(settings: Settings) -> None:
    class Lookup:
        def __init__(self, database: str) -> None: ...

    container = create_container(settings)
    container.use_cases.container.lookup = providers.Factory(
        Lookup, database=container.adapters.database
    )

    with pytest.raises(WiringError, match=r"Lookup\(database: str\) is given Database"):
        check_wiring(container)


async def test_what_nothing_provides_is_named(services: ContainerServices) -> None:
    with pytest.raises(UnknownDependency, match="AddNote"):
        services.get(AddNote)
    with pytest.raises(UnknownDependency, match="AddNote, NotePolicy"):
        services.require([LogIn, NotePolicy, AddNote])
    services.require([LogIn, Clock])
    await services.close()


def test_the_app_refuses_to_start_when_a_route_asks_for_what_nothing_provides(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    router = APIRouter()

    @router.post("/notes")
    async def add_note(adding: Any = use(AddNote)) -> None: ...

    monkeypatch.setattr(app_module, "ROUTERS", (*ROUTERS, router))

    with pytest.raises(UnknownDependency, match="AddNote"):
        create_app(settings, build_services(settings))


async def test_closing_releases_what_the_adapters_hold(services: ContainerServices) -> None:
    closed: list[str] = []

    class ClosingHasher(Argon2Hasher):
        def close(self) -> None:
            closed.append("hasher")
            super().close()

    services.container.adapters.hasher.override(providers.Singleton(ClosingHasher))
    await services.open()
    services.get(PasswordHasher)

    await services.close()

    assert closed == ["hasher"]


@pytest.mark.parametrize("use_case", [Authenticate, ListSessions, ListUsers, GetUser])
def test_the_use_cases_that_only_read_ask_for_a_reader(use_case: type) -> None:
    # A reader costs one round trip per query; a unit of work three (BEGIN, the query,
    # ROLLBACK): the hot paths read this way.
    assert "reader" in inspect.signature(use_case).parameters
