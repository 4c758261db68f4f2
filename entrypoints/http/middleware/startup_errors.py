"""One line, not a traceback, when a setting stops the API's start.

Starlette reports a lifespan that fails to start with the traceback as the message,
which the server logs. When the cause is a setting the operator must change
(``InvalidSettings``, such as a ``METRICS_PORT`` already in use), the message is that
setting's line alone, as when the settings are read.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from entrypoints.settings import InvalidSettings


class StartupErrorsMiddleware:
    """Replaces the message of ``lifespan.startup.failed`` by the ``InvalidSettings``
    line when that is why the start failed; anything else passes unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def hold_startup_failure(message: Message) -> None:
            # Sent once the exception behind it is known.
            if message["type"] == "lifespan.startup.failed":
                held.append(message)
            else:
                await send(message)

        try:
            await self.app(scope, receive, hold_startup_failure)
        except InvalidSettings as exc:
            if not held:
                raise
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
        except BaseException:
            await _send_all(send, held)
            raise
        else:
            await _send_all(send, held)


async def _send_all(send: Send, messages: list[Message]) -> None:
    for message in messages:
        await send(message)
