"""Mail as the domain sees it: a rendered message, and the ports that render and send it."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass

from domain.errors import DomainError, ErrorCategory


@dataclass(frozen=True)
class RenderedMail:
    """A template's output: the subject line and both bodies of one message."""

    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class Mail:
    """One message ready to go. ``message_id`` is the outbox message's id: the transport
    builds the ``Message-ID`` header from it, so every attempt carries the same one."""

    message_id: str
    to: str
    subject: str
    text: str
    html: str

    @classmethod
    def of(cls, message_id: str, to: str, rendered: RenderedMail) -> Mail:
        return cls(
            message_id=message_id,
            to=to,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
        )


class MailNotSent(DomainError):
    """A delivery failed; ``reason`` says why in one line, without the message's content
    (never a token or a link)."""

    # The mail server (or the limit store that counts mail) did not take it: another
    # attempt may succeed.
    category = ErrorCategory.UNAVAILABLE
    code = "mail_not_sent"
    message = "The message could not be sent."


class MailTransport(abc.ABC):
    """Delivers messages: SMTP, the console, or nowhere."""

    @abc.abstractmethod
    async def send(self, mail: Mail) -> None:
        """Deliver ``mail`` or raise ``MailNotSent``; every attempt of one message
        carries the same ``Message-ID``. Bounded in time: a server that hangs is a
        failure, not a wait forever."""


class MailTemplates(abc.ABC):
    """Renders the messages by template name (``verify_email``, ``password_reset``…)."""

    @abc.abstractmethod
    def render(self, template: str, context: Mapping[str, object]) -> RenderedMail:
        """The message ``template`` makes of ``context``: HTML with every value escaped,
        and a plain-text part. ``LookupError`` for an unknown template."""


def mask_address(address: str) -> str:
    """An address fit for a log line: enough to tell messages apart, not to read it."""
    local, _, domain = address.rpartition("@")
    if not local:
        return "***"
    return f"{local[0]}***@{domain}"
