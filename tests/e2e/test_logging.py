"""No password, token, hash or secret ever appears in a log line.

A real server (JSON logs at DEBUG) goes through every flow that handles a secret —
registration, logins by form and JSON that succeed and fail, refresh and its reuse,
logout, a password change — and then its whole output is searched for each secret it
saw. A second server mails through SMTP (its relay running in the API process) while a
user confirms the address and resets the password by the mailed links: no token, link
or address in clear appears in its output either. Below that, the redaction itself,
unit by unit.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from adapters import migrations
from entrypoints.logging import REDACTED, configure_logging, get_logger, redact
from tests.e2e.servers import running
from tests.smtp_server import SmtpSink

SECRET_KEY = "k" * 16 + secrets.token_hex(24)  # 64 characters, known to the test
REQUEST_FIELDS = ("request_id", "method", "route", "status", "duration_ms")


@dataclass
class Session:
    """What the server saw, and what it must never have written."""

    stderr: str
    stdout: str
    secrets: dict[str, str] = field(default_factory=dict)
    request_ids: dict[str, tuple[str, str, int]] = field(default_factory=dict)

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


class Recorder:
    """Sends requests with a fresh X-Request-ID each, and remembers every secret."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.secrets: dict[str, str] = {}
        self.request_ids: dict[str, tuple[str, str, int]] = {}

    def secret(self, name: str, value: str) -> str:
        self.secrets[name] = value
        return value

    def tokens(self, name: str, response: httpx.Response) -> dict[str, str]:
        assert response.status_code == 200, response.text
        pair = response.json()
        self.secret(f"{name} access token", pair["access_token"])
        self.secret(f"{name} refresh token", pair["refresh_token"])
        return {"access": pair["access_token"], "refresh": pair["refresh_token"]}

    async def send(
        self, method: str, url: str, route: str, expected: int, **kwargs: Any
    ) -> httpx.Response:
        request_id = f"log-test.{len(self.request_ids)}-{secrets.token_hex(4)}"
        headers = {"X-Request-ID": request_id, **kwargs.pop("headers", {})}
        response = await self.client.request(method, url, headers=headers, **kwargs)
        assert response.status_code == expected, (method, url, response.text)
        assert response.headers["x-request-id"] == request_id
        self.request_ids[request_id] = (method, route, expected)
        return response


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def exercise(api: Recorder) -> None:
    """Every flow that carries a password, a token or a hash."""
    users, login, me = "/api/v1/users/", "/api/v1/auth/login", "/api/v1/users/me"
    password = api.secret("password", f"first-{secrets.token_urlsafe(12)}")
    new_password = api.secret("new password", f"second-{secrets.token_urlsafe(12)}")
    wrong = api.secret("wrong password", f"wrong-{secrets.token_urlsafe(12)}")
    rejected = api.secret("rejected password", f"toolong-{secrets.token_urlsafe(120)}")
    user = {"email": "logs@example.com", "username": "logs_user", "password": password}

    await api.send("POST", users, "/api/v1/users/", 201, json=user)
    await api.send("POST", users, "/api/v1/users/", 409, json=user)
    await api.send(
        "POST",
        users,
        "/api/v1/users/",
        422,
        json={**user, "email": "x@e.org", "password": rejected},
    )
    form = await api.send(
        "POST", login, login, 200, data={"username": "logs_user", "password": password}
    )
    first = api.tokens("form login", form)
    by_json = await api.send(
        "POST", login, login, 200, json={"username": "LOGS@example.com", "password": password}
    )
    second = api.tokens("JSON login", by_json)
    await api.send("POST", login, login, 401, data={"username": "logs_user", "password": wrong})
    await api.send("POST", login, login, 401, json={"username": "nobody", "password": wrong})
    await api.send(
        "POST", login, login, 422, json={"username": "logs_user", "password": wrong, "x": 1}
    )

    await api.send("GET", me, me, 200, headers=bearer(first["access"]))
    forged = api.secret("forged token", first["access"][:-6] + "AAAAAA")
    await api.send("GET", me, me, 401, headers=bearer(forged))
    garbage = api.secret("garbage token", f"not-a-jwt-{secrets.token_hex(16)}")
    await api.send("GET", me, me, 401, headers=bearer(garbage))

    refresh = "/api/v1/auth/refresh"
    rotated = api.tokens(
        "refresh",
        await api.send("POST", refresh, refresh, 200, json={"refresh_token": first["refresh"]}),
    )
    # Reuse of the rotated token: refused, and the session dies.
    await api.send("POST", refresh, refresh, 401, json={"refresh_token": first["refresh"]})
    await api.send("GET", me, me, 401, headers=bearer(rotated["access"]))
    logout = "/api/v1/auth/logout"
    await api.send("POST", logout, logout, 204, json={"refresh_token": second["refresh"]})
    await api.send("POST", logout, logout, 401, json={"refresh_token": garbage})

    third = api.tokens(
        "third login",
        await api.send(
            "POST", login, login, 200, json={"username": "logs_user", "password": password}
        ),
    )
    await api.send(
        "PATCH",
        me,
        me,
        403,
        headers=bearer(third["access"]),
        json={"password": new_password, "current_password": wrong},
    )
    await api.send(
        "PATCH",
        me,
        me,
        200,
        headers=bearer(third["access"]),
        json={"password": new_password, "current_password": password},
    )
    await api.send("GET", me, me, 401, headers=bearer(third["access"]))
    last = api.tokens(
        "login with the new password",
        await api.send(
            "POST", login, login, 200, data={"username": "logs_user", "password": new_password}
        ),
    )
    await api.send(
        "GET", "/api/v1/auth/sessions", "/api/v1/auth/sessions", 200, headers=bearer(last["access"])
    )
    await api.send(
        "POST",
        "/api/v1/auth/logout-all",
        "/api/v1/auth/logout-all",
        204,
        headers=bearer(last["access"]),
    )


def stored_hashes(database: Path) -> list[str]:
    with sqlite3.connect(database) as conn:
        return [row[0] for row in conn.execute("SELECT password_hash FROM users")]


@pytest.fixture(scope="module")
async def session(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Session]:
    directory = tmp_path_factory.mktemp("logging")
    database = directory / "app.db"
    url = f"sqlite+aiosqlite:///{database}"
    await asyncio.to_thread(migrations.upgrade, url)
    env = {
        "DATABASE_URL": url,
        "SECRET_KEY": SECRET_KEY,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "DEBUG",
        "RATE_LIMIT_LOGIN": "100/minute",
    }
    async with running("logging", env, directory) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            api = Recorder(client)
            await exercise(api)
        await server.stop()
        hashes = stored_hashes(database)
        assert hashes
        assert all(h.startswith("$argon2id$") for h in hashes)
        for number, value in enumerate(hashes):
            api.secret(f"password hash {number}", value)
        api.secret("SECRET_KEY", SECRET_KEY)
        yield Session(server.stderr(), server.stdout(), api.secrets, api.request_ids)


def test_no_secret_appears_in_any_log_line(session: Session) -> None:
    output = session.stderr + session.stdout
    assert len(session.lines) > len(session.request_ids)  # it did log
    for name, value in session.secrets.items():
        assert value not in output, f"the {name} appears in the logs"
        # Nor a telling piece of it (a JWT's signature, a hash's digest).
        tail = value[-16:]
        assert tail not in output, f"the end of the {name} appears in the logs"


def test_no_token_or_hash_shape_appears_in_the_logs(session: Session) -> None:
    output = session.stderr + session.stdout
    assert "$argon2" not in output
    assert not re.search(r"eyJ[\w-]{8,}", output), "something JWT-shaped was logged"
    assert "Bearer " not in output


def test_every_line_is_one_json_event(session: Session) -> None:
    for line in session.lines:
        event = json.loads(line)
        assert isinstance(event, dict), line
        assert {"event", "level", "timestamp"} <= set(event), line
    assert session.stdout.strip() == ""


def test_every_request_is_logged_with_its_id_route_status_and_duration(
    session: Session,
) -> None:
    requests = [e for e in session.events if e["event"] == "request"]
    for event in requests:
        missing = [name for name in REQUEST_FIELDS if name not in event]
        assert not missing, (missing, event)
        assert isinstance(event["duration_ms"], int | float)
        assert event["duration_ms"] >= 0
    # The server names each request with an id of its own; the client's is logged beside.
    assert all(re.fullmatch(r"[0-9a-f]{32}", e["request_id"]) for e in requests)
    by_id = {e["client_request_id"]: e for e in requests if "client_request_id" in e}
    for request_id, (method, route, status) in session.request_ids.items():
        assert request_id in by_id, f"{request_id} ({method} {route}) was not logged"
        event = by_id[request_id]
        assert (event["method"], event["route"], event["status"]) == (method, route, status)


def test_the_server_started_and_stopped_cleanly(session: Session) -> None:
    events = [e["event"] for e in session.events]
    assert "api started" in events
    assert "api stopped" in events
    assert not [e for e in session.events if e["level"] in {"error", "critical"}]


# Mail: tokens, links and addresses -----------------------------------------------------

FRONTEND = "https://app.example.com"
MAIL_ADDRESS = "mailflow@example.com"
UNKNOWN_ADDRESS = "ghost.account@example.com"
LINK = re.compile(re.escape(FRONTEND) + r"/[\w/-]*\?token=([\w-]+)")
# The relay polls often, but a loaded machine may take its time: a generous bound.
MAIL_TIMEOUT = 60.0


@dataclass
class MailSession(Session):
    """What a mailing server wrote, and the mail it sent."""

    messages: list[str] = field(default_factory=list)  # each one's plain-text part


async def next_mail(sink: SmtpSink, count: int, api: Recorder) -> str:
    """Wait for the sink's ``count``-th message; its link, remembered as a secret."""
    deadline = time.monotonic() + MAIL_TIMEOUT
    while len(sink.messages) < count:
        assert time.monotonic() < deadline, f"message {count} did not arrive"
        await asyncio.sleep(0.05)
    part = sink.messages[count - 1].get_body(("plain",))
    assert part is not None
    match = LINK.search(str(part.get_content()))
    assert match is not None, part.get_content()
    api.secret(f"link {count}", match.group(0))
    api.secret(f"token {count}", match.group(1))
    return match.group(1)


async def mail_flow(api: Recorder, sink: SmtpSink) -> None:
    """Register, confirm the address by the mailed link, ask for a reset (for the
    account, and for an address nobody has), and reset the password by the link."""
    users, verify = "/api/v1/users/", "/api/v1/auth/verify-email"
    request_reset, reset = "/api/v1/auth/password-reset/request", "/api/v1/auth/password-reset"
    password = api.secret("password", f"first-{secrets.token_urlsafe(12)}")
    new_password = api.secret("new password", f"second-{secrets.token_urlsafe(12)}")
    api.secret("reset address", MAIL_ADDRESS)
    api.secret("unknown reset address", UNKNOWN_ADDRESS)
    user = {"email": MAIL_ADDRESS, "username": "mailflow", "password": password}

    await api.send("POST", users, users, 201, json=user)
    verification = await next_mail(sink, 1, api)
    await api.send("POST", verify, verify, 200, json={"token": verification})
    await api.send("POST", verify, verify, 400, json={"token": verification})
    garbage = api.secret("garbage token", secrets.token_urlsafe(32))
    await api.send("POST", verify, verify, 400, json={"token": garbage})

    await api.send("POST", request_reset, request_reset, 202, json={"email": UNKNOWN_ADDRESS})
    await api.send("POST", request_reset, request_reset, 202, json={"email": MAIL_ADDRESS})
    reset_token = await next_mail(sink, 2, api)
    short = {"token": reset_token, "new_password": "short"}
    await api.send("POST", reset, reset, 422, json=short)
    await api.send(
        "POST", reset, reset, 204, json={"token": reset_token, "new_password": new_password}
    )
    await api.send(
        "POST", reset, reset, 400, json={"token": reset_token, "new_password": new_password}
    )
    login = "/api/v1/auth/login"
    await api.send(
        "POST", login, login, 200, data={"username": "mailflow", "password": new_password}
    )
    # The "your password was changed" notice.
    deadline = time.monotonic() + MAIL_TIMEOUT
    while len(sink.messages) < 3:
        assert time.monotonic() < deadline, "the password change notice did not arrive"
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
async def mail_session(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MailSession]:
    directory = tmp_path_factory.mktemp("mail-logging")
    url = f"sqlite+aiosqlite:///{directory / 'app.db'}"
    await asyncio.to_thread(migrations.upgrade, url)
    with SmtpSink() as sink:
        env = {
            "DATABASE_URL": url,
            "SECRET_KEY": SECRET_KEY,
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "DEBUG",
            "FRONTEND_URL": FRONTEND,
            "MAIL_BACKEND": "smtp",
            "SMTP_HOST": sink.host,
            "SMTP_PORT": str(sink.port),
            "SMTP_SECURITY": "none",
            "OUTBOX_RELAY_IN_API": "true",
            "OUTBOX_POLL_SECONDS": "0.1",
        }
        async with running("mail-logging", env, directory) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                api = Recorder(client)
                await mail_flow(api, sink)
            await server.stop()
            texts = []
            for message in sink.messages:
                part = message.get_body(("plain",))
                assert part is not None
                texts.append(str(part.get_content()))
            yield MailSession(server.stderr(), server.stdout(), api.secrets, api.request_ids, texts)


def test_no_token_link_or_address_in_clear_appears_in_any_log_line(
    mail_session: MailSession,
) -> None:
    output = mail_session.stderr + mail_session.stdout
    assert len(mail_session.lines) > len(mail_session.request_ids)  # it did log
    assert len(mail_session.messages) == 3  # verification, reset, notice
    for name, value in mail_session.secrets.items():
        assert value not in output, f"the {name} appears in the logs"
        assert value[-16:] not in output, f"the end of the {name} appears in the logs"
    assert "?token=" not in output
    assert "token=" not in output
    assert FRONTEND not in output
    assert "mailflow@" not in output
    assert "ghost.account" not in output


def test_each_mail_is_logged_by_id_template_and_masked_recipient(
    mail_session: MailSession,
) -> None:
    sent = [e for e in mail_session.events if e["event"] == "mail sent"]
    dropped = [e for e in mail_session.events if e["event"] == "mail dropped"]

    assert sorted(e["template"] for e in sent) == [
        "password_changed",
        "password_reset",
        "verify_email",
    ]
    for event in sent:
        assert event["recipient"] == "m***@example.com"
        assert re.fullmatch(r"[0-9a-f]{32}", event["message_id"])
    # The reset asked for an address nobody has: nothing sent, said without the address.
    assert [(e["template"], e["recipient"]) for e in dropped] == [
        ("password_reset", "g***@example.com")
    ]
    requests = {e.get("client_request_id") for e in mail_session.events if e["event"] == "request"}
    assert set(mail_session.request_ids) <= requests
    assert not [e for e in mail_session.events if e["level"] in {"error", "critical"}]


# Redaction, unit by unit ---------------------------------------------------------------

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIiwidHlwZSI6ImFjY2VzcyJ9"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
HASH = (
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$N2FiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6MDE"
)


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "current_password",
        "new_password",
        "passwd",
        "hashed_password",
        "password_hash",
        "access_token",
        "refresh_token",
        "token",
        "Authorization",
        "cookie",
        "set-cookie",
        "secret",
        "SECRET_KEY",
        "client_secret",
        "api_key",
        "api-key",
        "credentials",
    ],
)
def test_values_under_sensitive_keys_are_redacted(key: str) -> None:
    assert redact({key: "s3cret"}) == {key: REDACTED}
    assert redact({key: {"nested": 1}}) == {key: REDACTED}
    assert redact("s3cret", key) == REDACTED


def test_redaction_reaches_into_nested_dicts_and_lists() -> None:
    value = {
        "user": {"name": "ann", "password": "pw"},
        "items": [{"token": "t"}, {"ok": 1}, (JWT, "plain")],
        "count": 3,
    }
    assert redact(value) == {
        "user": {"name": "ann", "password": REDACTED},
        "items": [{"token": REDACTED}, {"ok": 1}, [REDACTED, "plain"]],
        "count": 3,
    }


def test_tokens_and_hashes_inside_free_text_are_redacted() -> None:
    text = f"Bearer {JWT} failed; row ('a@b.c', '{HASH}') and {JWT}."
    assert redact(text) == f"Bearer {REDACTED} failed; row ('a@b.c', '{REDACTED}') and {REDACTED}."


@pytest.mark.parametrize("value", ["hello", "user 42 logged in", 7, 1.5, None, True])
def test_ordinary_values_pass_unchanged(value: object) -> None:
    assert redact(value) == value
    assert redact({"user_id": value, "event": value}) == {"user_id": value, "event": value}


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """``configure_logging`` into a buffer; the process's logging restored after."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, structlog.get_config())
    saved_uvicorn = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
    }
    stream = io.StringIO()
    yield stream
    root.handlers[:], level, config = saved
    root.setLevel(level)
    structlog.configure(**config)
    for name, (handlers, propagate) in saved_uvicorn.items():
        logging.getLogger(name).handlers[:] = handlers
        logging.getLogger(name).propagate = propagate


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_both_renderers_redact_events_extras_messages_and_tracebacks(
    captured: io.StringIO, fmt: Any
) -> None:
    configure_logging("DEBUG", fmt, stream=captured)
    log = get_logger(f"redaction-{secrets.token_hex(4)}")  # a new, uncached logger
    log.info("login", password="pw-structlog", detail={"refresh_token": "rt-structlog"})
    log.info(f"token {JWT} seen")
    stdlib = logging.getLogger("redaction.stdlib")
    stdlib.info("header %s", f"Bearer {JWT}")
    stdlib.warning("extra", extra={"authorization": "Bearer abc-stdlib", "user_id": 7})
    try:
        raise RuntimeError(f"insert failed [parameters: ('a@b.c', '{HASH}')] for {JWT}")
    except RuntimeError:
        log.exception("database error")
        stdlib.exception("database error (stdlib)")
    output = captured.getvalue()
    for secret in ("pw-structlog", "rt-structlog", "abc-stdlib", JWT, HASH, "$argon2"):
        assert secret not in output, f"{secret!r} leaked in {fmt} output:\n{output}"
    assert "insert failed" in output  # the traceback itself is kept
    assert output.count(REDACTED) >= 8
    if fmt == "json":
        events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        assert len(events) == 6
        assert events[3]["user_id"] == 7


def test_a_logger_made_before_configuration_follows_it(captured: io.StringIO) -> None:
    """Module loggers are made (and cached) at import: a later ``configure_logging`` still
    decides their stream and level."""
    log = get_logger(f"early-{secrets.token_hex(4)}")
    log.info("before configuration")  # cached now, under whatever was configured
    configure_logging("WARNING", "json", stream=captured)
    log.info("below the level")
    log.warning("at the level", detail=1)
    lines = captured.getvalue().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["at the level"]
    configure_logging("DEBUG", "json", stream=captured)
    log.debug("now shown")
    assert json.loads(captured.getvalue().splitlines()[-1])["event"] == "now shown"
