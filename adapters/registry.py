"""Which adapter implements which repository port, found where the adapters live.

A repository class that subclasses ``SqlRepository`` and a port of the domain is that
port's adapter; importing its module is all the registration there is. ``load_all``
imports every module of this package, so that units of work find every repository and
``migrations/env.py`` sees every table.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any, TypeVar

from adapters.executors import Executor

R = TypeVar("R")

_ADAPTERS: dict[type, type[SqlRepository]] = {}


class SqlRepository:
    """Base of the SQL repositories: each works inside its unit of work's connection and
    transaction, through the executor it is handed, and never commits on its own."""

    def __init__(self, db: Executor) -> None:
        self._db = db

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in cls.__mro__[1:]:
            if inspect.isabstract(base) and base.__module__.split(".")[0] == "domain":
                _ADAPTERS[base] = cls


def load_all() -> None:
    """Import every adapter module (idempotent): their repositories and tables register."""
    package = importlib.import_module(__name__.rsplit(".", 1)[0])
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")


def adapter_for(port: type[R]) -> type[SqlRepository]:
    """The class implementing the repository ``port``; ``LookupError`` if none does."""
    found = _ADAPTERS.get(port)
    if found is None:
        load_all()
        found = _ADAPTERS.get(port)
    if found is None:
        raise LookupError(f"no adapter implements {port.__module__}.{port.__qualname__}")
    return found
