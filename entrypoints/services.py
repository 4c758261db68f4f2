"""What the delivery adapters get from the composition root: one typed channel.

The HTTP API, the CLI and the job runner never import the container (nor, through it,
the adapters): they are handed a ``Services`` and ask it for the use cases and ports
they need, by class.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

T = TypeVar("T")


class Services(Protocol):
    def get(self, kind: type[T]) -> T:
        """The one instance of ``kind``: a use case (built with the ports its
        constructor names) or a port (bound to its adapter)."""
        ...

    async def close(self) -> None:
        """Release what the adapters hold (pools, threads), if they were built."""
        ...
