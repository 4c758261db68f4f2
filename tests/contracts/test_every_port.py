"""Every repository port has an adapter, a fake, and a contract spec."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from adapters.repositories import REPOSITORIES
from tests.fakes import FAKES

SPECS = sorted(Path(__file__).parent.glob("test_*.py"))


def _fakes() -> dict[type, object]:
    """The project's fakes and those a spec names for its port (a new resource's)."""
    found: dict[type, object] = dict(FAKES)
    for spec in SPECS:
        module = importlib.import_module(f"tests.contracts.{spec.stem}")
        found.update(getattr(module, "FAKES", {}))
    return found


def test_every_port_with_an_adapter_has_a_fake_and_each_implements_its_port() -> None:
    fakes = _fakes()
    assert set(REPOSITORIES) <= set(fakes), set(REPOSITORIES) - set(fakes)
    for port, adapter in REPOSITORIES.items():
        assert issubclass(adapter, port), adapter
        fake = fakes[port]
        assert inspect.isclass(fake), fake
        assert issubclass(fake, port), fake
        assert not inspect.isabstract(adapter)
        assert not inspect.isabstract(fake)


def test_every_port_has_its_contract_spec() -> None:
    specs = "\n".join(path.read_text() for path in SPECS)
    missing = [port.__name__ for port in REPOSITORIES if f"({port.__name__})" not in specs]
    assert not missing, f"no contract spec in tests/contracts uses {missing}"
