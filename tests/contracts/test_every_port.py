"""Every repository port has an adapter, a fake, and a contract spec."""

from __future__ import annotations

import inspect
from pathlib import Path

from adapters.repositories import REPOSITORIES
from tests.fakes import FAKES

SPECS = Path(__file__).parent


def test_every_port_with_an_adapter_has_a_fake_and_each_implements_its_port() -> None:
    assert set(FAKES) == set(REPOSITORIES)
    for port, adapter in REPOSITORIES.items():
        assert issubclass(adapter, port), adapter
        fake = FAKES[port]
        assert inspect.isclass(fake), fake
        assert issubclass(fake, port), fake
        assert not inspect.isabstract(adapter)
        assert not inspect.isabstract(fake)


def test_every_port_has_its_contract_spec() -> None:
    specs = "\n".join(path.read_text() for path in SPECS.glob("test_*.py"))
    missing = [port.__name__ for port in REPOSITORIES if f"({port.__name__})" not in specs]
    assert not missing, f"no contract spec in tests/contracts uses {missing}"
