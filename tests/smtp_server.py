"""Real servers for the mail tests: an SMTP sink (aiosmtpd) that keeps what it receives,
and raw TCP servers that misbehave.

Each runs in a thread of its own, with its own event loop if any, so a test's event
loop can talk to it like to any remote server.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "127.0.0.1"


def self_signed_cert(dir: Path) -> tuple[Path, Path]:
    """A certificate for ``localhost`` and 127.0.0.1 and its key, as PEM files in
    ``dir``: ``(cert, key)``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = dir / "cert.pem", dir / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def free_port() -> int:
    """A port nobody listens on (right now) on ``HOST``."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Delivery:
    """One message as the sink took it: the envelope, how the client came, the message."""

    mail_from: str
    rcpt_tos: list[str]
    encrypted: bool
    login: str | None
    message: EmailMessage


class _Handler:
    def __init__(
        self, deliveries: list[Delivery], refuse: int | None, refuse_at: Literal["rcpt", "data"]
    ) -> None:
        self._deliveries = deliveries
        self._refuse = refuse
        self._refuse_at = refuse_at

    def _refusal(self, address: str) -> str:
        assert self._refuse is not None
        # As real servers do: the answer names the recipient.
        what = "mailbox unavailable" if self._refuse >= 500 else "try again later"
        return f"{self._refuse} <{address}>: {what}"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self._refuse is not None and self._refuse_at == "rcpt":
            return self._refusal(address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self._refuse is not None and self._refuse_at == "data":
            return self._refusal(", ".join(envelope.rcpt_tos))
        assert isinstance(envelope.content, bytes)
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        transport = server.transport
        login = session.login_data
        self._deliveries.append(
            Delivery(
                mail_from=str(envelope.mail_from),
                rcpt_tos=list(envelope.rcpt_tos),
                encrypted=transport is not None
                and transport.get_extra_info("ssl_object") is not None,
                login=login.decode() if isinstance(login, bytes) else None,
                message=message,
            )
        )
        return "250 OK"


class SmtpSink:
    """An SMTP server on ``HOST``:``port`` that keeps every message it accepts.

    ``starttls`` offers STARTTLS, ``implicit_tls`` speaks TLS from the first byte (both
    with a self-signed certificate: ``client_tls_context()`` trusts it); ``auth``
    requires AUTH PLAIN or LOGIN with that user and password before MAIL; ``refuse``
    answers every RCPT (or DATA, by ``refuse_at``) with that code.
    """

    def __init__(
        self,
        *,
        starttls: bool = False,
        implicit_tls: bool = False,
        auth: tuple[str, str] | None = None,
        refuse: int | None = None,
        refuse_at: Literal["rcpt", "data"] = "rcpt",
    ) -> None:
        assert not (starttls and implicit_tls), "STARTTLS or implicit TLS, not both"
        self.host = HOST
        self.port = free_port()
        self.deliveries: list[Delivery] = []
        self._dir = tempfile.TemporaryDirectory(prefix="smtp-sink-")
        self._cert: Path | None = None
        server_context: ssl.SSLContext | None = None
        if starttls or implicit_tls:
            self._cert, key = self_signed_cert(Path(self._dir.name))
            server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            server_context.load_cert_chain(self._cert, key)
        options: dict[str, Any] = {}
        if auth is not None:
            user, password = auth

            def authenticate(
                server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
            ) -> AuthResult:
                ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
                    user.encode(),
                    password.encode(),
                )
                return AuthResult(success=ok, handled=False, auth_data=data)

            options = {
                "authenticator": authenticate,
                "auth_required": True,
                # aiosmtpd only counts STARTTLS as TLS; implicit TLS and plain need this.
                "auth_require_tls": starttls,
            }
        self._controller = Controller(
            _Handler(self.deliveries, refuse, refuse_at),
            hostname=self.host,
            port=self.port,
            ssl_context=server_context if implicit_tls else None,
            tls_context=server_context if starttls else None,
            **options,
        )

    @property
    def messages(self) -> list[EmailMessage]:
        return [delivery.message for delivery in self.deliveries]

    def client_tls_context(self) -> ssl.SSLContext:
        """A client context that trusts this sink's certificate, and only it."""
        assert self._cert is not None, "this sink speaks no TLS"
        return ssl.create_default_context(cafile=str(self._cert))

    def __enter__(self) -> SmtpSink:
        self._controller.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._controller.stop()
        self._dir.cleanup()


class _RawServer:
    """Accepts TCP connections on ``HOST`` and then holds them in silence, or closes
    them at once."""

    def __init__(self, *, close_at_once: bool) -> None:
        self._close_at_once = close_at_once
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="raw-server", daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            if self._close_at_once:
                conn.close()
            else:
                self._held.append(conn)

    @contextmanager
    def running(self) -> Iterator[int]:
        self._thread.start()
        try:
            yield self.port
        finally:
            self._stop.set()
            self._thread.join()
            for conn in self._held:
                conn.close()
            self._listener.close()


@contextmanager
def hanging_server() -> Iterator[int]:
    """A server that accepts connections and never says a word: yields its port."""
    with _RawServer(close_at_once=False).running() as port:
        yield port


@contextmanager
def dropping_server() -> Iterator[int]:
    """A server that closes every connection as soon as it accepts it: yields its port."""
    with _RawServer(close_at_once=True).running() as port:
        yield port
