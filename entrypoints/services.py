"""What the delivery adapters get from the composition root: one typed channel.

The HTTP API, the CLI and the job runner never import the container (nor, through it,
the adapters): they are handed a ``Services`` and ask it for the use cases and ports
they need, by class.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

T = TypeVar("T")


class Services(Protocol):
    def get(self, kind: type[T]) -> T:
        """The instance of ``kind`` its provider makes: a use case (built with the ports
        declared for it) or a port (bound to its adapter)."""
        ...

    def require(self, kinds: Iterable[type]) -> None:
        """Raise ``LookupError`` naming every one of ``kinds`` that nothing provides:
        an entrypoint calls it at start-up with everything it will ask for."""
        ...

    async def open(self) -> None:
        """Set up what must be released later (``close``)."""
        ...

    async def close(self) -> None:
        """Release what the adapters hold (pools, threads), if they were built."""
        ...
