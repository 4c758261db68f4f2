"""Mail transports: SMTP (aiosmtplib), the console for development, and nowhere."""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Literal, TextIO

import aiosmtplib

from domain.mail import Mail, MailNotSent, MailTransport, mask_address

Security = Literal["starttls", "tls", "none"]


def build_message(mail: Mail, sender: str) -> EmailMessage:
    """``mail`` as a MIME message from ``sender`` (``Name <address>``): a plain-text part
    and its HTML alternative, both UTF-8.

    The ``Message-ID`` is made of ``mail.message_id`` and the sender's domain only, so
    every attempt of one message carries the same one and a receiver that got it
    twice (the server accepted it, but its answer was lost) can tell.
    """
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = f"<{mail.message_id}@{_domain_of(sender)}>"
    # Quoted-printable keeps the parts 7-bit: a server without 8BITMIME takes them as
    # they are, and the text still reads as text in the raw message.
    message.set_content(mail.text, charset="utf-8", cte="quoted-printable")
    message.add_alternative(mail.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return message


def _domain_of(sender: str) -> str:
    _, at, domain = parseaddr(sender)[1].rpartition("@")
    return domain if at and domain else "localhost"


class SmtpTransport(MailTransport):
    """Delivers through an SMTP server.

    ``security``: ``"starttls"`` upgrades the connection and fails if the server does not
    offer STARTTLS (never a plain-text fallback); ``"tls"`` is TLS from the first byte
    (port 465); ``"none"`` is plain text, for a relay on a trusted network. Certificates
    are verified against the system's trust store, or against ``tls_context`` if given.

    ``timeout`` (seconds) bounds the connection, each command and the whole exchange:
    a server that hangs at any step is a failure after about ``timeout``.
    """

    def __init__(
        self,
        host: str,
        port: int = 587,
        *,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        security: Security = "starttls",
        timeout: float = 10.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if security not in ("starttls", "tls", "none"):
            raise ValueError(f"unknown SMTP security {security!r}: starttls, tls or none")
        if timeout <= 0:
            raise ValueError("the SMTP timeout must be positive")
        self._host = host
        self._port = port
        self._sender = sender
        self._envelope_from = parseaddr(sender)[1]
        self._username = username
        self._password = password
        self._security = security
        self._timeout = timeout
        self._tls_context = tls_context
        self._hostname: str | None = None

    async def send(self, mail: Mail) -> None:
        try:
            message = build_message(mail, self._sender)
        except ValueError:
            # The header values are not quoted: their content stays out of the reason.
            raise MailNotSent(f"{self._where}: the message has an invalid header") from None
        try:
            # aiosmtplib bounds each step by ``timeout``; this bounds their sum, so a
            # server answering just in time at every step cannot hold a worker forever.
            async with asyncio.timeout(self._timeout):
                await aiosmtplib.send(
                    message,
                    sender=self._envelope_from,
                    recipients=[mail.to],
                    hostname=self._host,
                    port=self._port,
                    username=self._username,
                    password=self._password,
                    use_tls=self._security == "tls",
                    # True, not None: None would mean "if the server offers it".
                    start_tls=self._security == "starttls",
                    timeout=self._timeout,
                    tls_context=self._tls_context,
                    local_hostname=await self._local_hostname(),
                )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailNotSent(self._reason(exc, mail)) from exc

    async def _local_hostname(self) -> str:
        # What EHLO names: looked up once (aiosmtplib would ask the resolver, in a
        # thread, on every send).
        if self._hostname is None:
            self._hostname = await asyncio.to_thread(socket.getfqdn)
        return self._hostname

    @property
    def _where(self) -> str:
        return f"smtp {self._host}:{self._port}"

    def _reason(self, exc: Exception, mail: Mail) -> str:
        """One line for the log: the server's answer or the error, never the content."""
        if isinstance(exc, TimeoutError):  # aiosmtplib's own timeouts included
            detail = f"timed out after {self._timeout:g}s"
        elif isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
            refused = exc.recipients[0]
            detail = f"{refused.code} {refused.message}"
        elif isinstance(exc, aiosmtplib.SMTPResponseException):
            detail = f"{exc.code} {exc.message}"
        else:
            detail = str(exc) or type(exc).__name__
            # aiosmtplib names the host and port again, already at the start of the reason.
            detail = detail.removeprefix(f"Error connecting to {self._host} on port {self._port}: ")
        # Servers echo the recipient in their answers; the password is replaced in case
        # one echoes the AUTH exchange.
        detail = detail.replace(mail.to, mask_address(mail.to))
        if self._password:
            detail = detail.replace(self._password, "***")
        detail = " ".join(detail.split())[:REASON_LENGTH]
        return f"{self._where}: {detail}"


class ConsoleTransport(MailTransport):
    """Writes each message, headers and both parts, to ``stream`` (standard output by
    default): development only, where a link in the terminal beats a mail server."""

    def __init__(self, sender: str, stream: TextIO | None = None) -> None:
        self._sender = sender
        self._stream = stream

    async def send(self, mail: Mail) -> None:
        message = build_message(mail, self._sender)
        headers = "".join(f"{name}: {value}\n" for name, value in message.items())
        rendering = (
            f"{headers}\n"
            f"--- text/plain ---\n{mail.text.rstrip()}\n\n"
            f"--- text/html ---\n{mail.html.rstrip()}\n"
            f"{SEPARATOR}\n"
        )
        # Looked up now, not at construction: pytest and the CLI swap sys.stdout.
        stream = self._stream or sys.stdout
        try:
            stream.write(rendering)
            stream.flush()
        except (OSError, ValueError) as exc:  # ValueError: the stream is closed
            raise MailNotSent(f"console: {exc}") from exc


class NullTransport(MailTransport):
    """Drops every message (``MAIL_BACKEND=none``): for deployments that send no mail."""

    async def send(self, mail: Mail) -> None:
        return None


SEPARATOR = "=" * 72
# A server's answer can run to several lines; the reason is one, of a log line's size.
REASON_LENGTH = 300
