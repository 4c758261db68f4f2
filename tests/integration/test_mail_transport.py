"""The mail transports against real SMTP servers: a sink (aiosmtpd), in plain text,
STARTTLS and implicit TLS, and servers that refuse, hang or hang up."""

from __future__ import annotations

import io
import time
from email.message import EmailMessage
from typing import Literal

import pytest

from adapters.mail import ConsoleTransport, NullTransport, SmtpTransport, build_message
from domain.mail import Mail, MailNotSent
from tests.smtp_server import SmtpSink, dropping_server, free_port, hanging_server

SENDER = "Backend Template <no-reply@localhost>"
LINK = "https://app.example.com/verify?token=abc123&next=%2Fhome"
USER, PASSWORD = "mailer", "s3cret-passw0rd"


def a_mail(message_id: str = "0190a5c3-7d2e-7c41-9f1e-4b8a2d6c9e01") -> Mail:
    return Mail(
        message_id=message_id,
        to="alice@example.com",
        subject="Confirm your address ✓",
        text=f"Hi Alice,\n\nOpen this link: {LINK}\n",
        html=f'<p>Hi Alice,</p><p><a href="{LINK.replace("&", "&amp;")}">Confirm</a></p>\n',
    )


def parts(message: EmailMessage) -> tuple[str, str]:
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None
    assert html is not None
    return str(text.get_content()), str(html.get_content())


def test_the_message_id_is_the_mail_id_at_the_sender_domain() -> None:
    assert build_message(a_mail("m-1"), SENDER)["Message-ID"] == "<m-1@localhost>"
    assert (
        build_message(a_mail("m-1"), "Acme <no-reply@mail.acme.test>")["Message-ID"]
        == "<m-1@mail.acme.test>"
    )
    assert build_message(a_mail("m-1"), "no address")["Message-ID"] == "<m-1@localhost>"


async def test_plain_smtp_delivers_both_parts_with_one_message_id_for_every_attempt() -> None:
    with SmtpSink() as sink:
        transport = SmtpTransport(sink.host, sink.port, sender=SENDER, security="none")

        await transport.send(a_mail())
        await transport.send(a_mail())

    first, second = sink.deliveries
    assert first.mail_from == "no-reply@localhost"
    assert first.rcpt_tos == ["alice@example.com"]
    assert not first.encrypted
    message = first.message
    assert message["From"] == SENDER
    assert message["To"] == "alice@example.com"
    assert message["Subject"] == "Confirm your address ✓"
    assert message["Date"]
    assert message["Message-ID"] == "<0190a5c3-7d2e-7c41-9f1e-4b8a2d6c9e01@localhost>"
    assert second.message["Message-ID"] == message["Message-ID"]
    text, html = parts(message)
    assert LINK in text
    assert LINK.replace("&", "&amp;") in html


async def test_starttls_with_auth_delivers_over_an_encrypted_connection() -> None:
    with SmtpSink(starttls=True, auth=(USER, PASSWORD)) as sink:
        transport = SmtpTransport(
            sink.host,
            sink.port,
            sender=SENDER,
            username=USER,
            password=PASSWORD,
            tls_context=sink.client_tls_context(),
        )

        await transport.send(a_mail())

    (delivery,) = sink.deliveries
    assert delivery.encrypted
    assert delivery.login == USER
    assert LINK in parts(delivery.message)[0]


# aiosmtpd counts only STARTTLS as TLS, so it warns about AUTH over implicit TLS.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_implicit_tls_delivers() -> None:
    with SmtpSink(implicit_tls=True, auth=(USER, PASSWORD)) as sink:
        transport = SmtpTransport(
            sink.host,
            sink.port,
            sender=SENDER,
            username=USER,
            password=PASSWORD,
            security="tls",
            tls_context=sink.client_tls_context(),
        )

        await transport.send(a_mail())

    (delivery,) = sink.deliveries
    assert delivery.encrypted
    assert delivery.login == USER


async def test_starttls_required_fails_against_a_server_without_it_and_sends_nothing() -> None:
    with SmtpSink() as sink:
        transport = SmtpTransport(sink.host, sink.port, sender=SENDER, security="starttls")

        with pytest.raises(MailNotSent, match="STARTTLS") as failure:
            await transport.send(a_mail())

    assert str(failure.value).startswith(f"smtp {sink.host}:{sink.port}: ")
    assert sink.messages == []


async def test_a_certificate_the_system_does_not_trust_is_refused_by_default() -> None:
    with SmtpSink(starttls=True) as sink:
        transport = SmtpTransport(sink.host, sink.port, sender=SENDER)

        with pytest.raises(MailNotSent, match="certificate verify failed"):
            await transport.send(a_mail())

    assert sink.messages == []


async def test_a_wrong_password_fails_and_the_reason_does_not_show_it() -> None:
    with SmtpSink(starttls=True, auth=(USER, PASSWORD)) as sink:
        transport = SmtpTransport(
            sink.host,
            sink.port,
            sender=SENDER,
            username=USER,
            password="wrong-passw0rd",
            tls_context=sink.client_tls_context(),
        )

        with pytest.raises(MailNotSent, match="535") as failure:
            await transport.send(a_mail())

    assert "wrong-passw0rd" not in str(failure.value)
    assert sink.messages == []


@pytest.mark.parametrize(
    ("code", "refuse_at"), [(550, "rcpt"), (451, "rcpt"), (550, "data"), (451, "data")]
)
async def test_a_refusal_is_a_failure_that_says_the_code_and_masks_the_recipient(
    code: int, refuse_at: Literal["rcpt", "data"]
) -> None:
    with SmtpSink(refuse=code, refuse_at=refuse_at) as sink:
        transport = SmtpTransport(sink.host, sink.port, sender=SENDER, security="none")

        with pytest.raises(MailNotSent) as failure:
            await transport.send(a_mail())

    reason = str(failure.value)
    assert reason.startswith(f"smtp {sink.host}:{sink.port}: {code} ")
    assert "alice@example.com" not in reason
    assert "a***@example.com" in reason
    assert "\n" not in reason


async def test_a_server_that_never_greets_fails_within_the_timeout() -> None:
    with hanging_server() as port:
        transport = SmtpTransport("127.0.0.1", port, sender=SENDER, security="none", timeout=1.0)
        started = time.monotonic()

        with pytest.raises(MailNotSent, match="timed out after 1s"):
            await transport.send(a_mail())

    assert time.monotonic() - started < 15


async def test_a_server_that_hangs_up_at_once_fails() -> None:
    with dropping_server() as port:
        transport = SmtpTransport("127.0.0.1", port, sender=SENDER, security="none", timeout=5.0)

        with pytest.raises(MailNotSent, match=f"smtp 127.0.0.1:{port}: "):
            await transport.send(a_mail())


async def test_a_port_nobody_listens_on_fails() -> None:
    port = free_port()
    transport = SmtpTransport("127.0.0.1", port, sender=SENDER, security="none", timeout=5.0)

    with pytest.raises(MailNotSent, match=f"smtp 127.0.0.1:{port}: "):
        await transport.send(a_mail())


async def test_no_failure_reason_holds_the_content_of_the_message() -> None:
    mail = a_mail()
    with SmtpSink(refuse=550, refuse_at="data") as sink:
        transport = SmtpTransport(sink.host, sink.port, sender=SENDER, security="none")
        with pytest.raises(MailNotSent) as failure:
            await transport.send(mail)

    reason = str(failure.value)
    assert mail.subject not in reason
    assert "token=abc123" not in reason


async def test_the_console_transport_writes_headers_and_both_parts() -> None:
    stream = io.StringIO()

    await ConsoleTransport(SENDER, stream).send(a_mail())

    written = stream.getvalue()
    assert f"From: {SENDER}" in written
    assert "To: alice@example.com" in written
    assert "Subject: Confirm your address ✓" in written
    assert "Message-ID: <0190a5c3-7d2e-7c41-9f1e-4b8a2d6c9e01@localhost>" in written
    assert f"Open this link: {LINK}" in written  # the text part, as the reader sees it
    assert "<p>Hi Alice,</p>" in written  # the HTML part
    assert written.endswith("=" * 72 + "\n")


async def test_the_console_transport_writes_to_the_standard_output_of_the_moment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    transport = ConsoleTransport(SENDER)

    await transport.send(a_mail())

    assert LINK in capsys.readouterr().out


async def test_the_null_transport_drops_the_message() -> None:
    with SmtpSink() as sink:
        await NullTransport().send(a_mail())

    assert sink.messages == []
