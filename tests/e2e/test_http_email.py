"""Email verification and password reset through the HTTP API (the HTTP contract: "Email
verification and password reset"), with real mail: ``MAIL_BACKEND=smtp`` against an
SMTP sink, the relay run by the test (``relay_once``), and each mailed link followed
as a user would, on SQLite and PostgreSQL.

Every test's sink is checked when the test ends: each message has a plain-text and an
HTML part and a Message-ID of its own, and no token mailed appeared in any response.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from dependency_injector import providers

from adapters.mail import SmtpTransport
from application.outbox import Outcome
from domain.email_tokens import EmailTokenRepository, Purpose, token_hash
from domain.ports import UnitOfWork, UserRepository
from entrypoints.container import Container
from entrypoints.outbox_relay import relay_once
from tests.e2e.conftest import (
    LOGIN,
    ME,
    PASSWORD,
    REFRESH,
    SESSIONS,
    USER_FIELDS,
    Api,
    AppFactory,
    assert_problem,
    bearer,
)
from tests.smtp_server import Delivery, SmtpSink

FRONTEND = "https://app.example.com"
VERIFY_PATH, RESET_PATH = "/verify-email", "/reset-password"
MAIL_FROM = "Backend Template <no-reply@localhost>"
VERIFY = "/api/v1/auth/verify-email"
RESEND = "/api/v1/auth/verify-email/resend"
RESET_REQUEST = "/api/v1/auth/password-reset/request"
RESET = "/api/v1/auth/password-reset"
NEW_PASSWORD = "a brand new passphrase"
LINK = re.compile(re.escape(FRONTEND) + r"(/[\w/-]*)\?token=([\w-]+)")
MESSAGE_ID = re.compile(r"<[0-9a-f]{32}@localhost>")
SMTP_USER, SMTP_PASSWORD = "mailer", "smtp-s3cret-passw0rd"


@dataclass(frozen=True)
class Received:
    """One message as the sink got it."""

    delivery: Delivery

    @property
    def message(self) -> EmailMessage:
        return self.delivery.message

    @property
    def to(self) -> str:
        (recipient,) = self.delivery.rcpt_tos
        return recipient

    @property
    def text(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None, "no plain-text part"
        return str(part.get_content())

    @property
    def html(self) -> str:
        part = self.message.get_body(("html",))
        assert part is not None, "no HTML part"
        return str(part.get_content())

    def links(self) -> set[tuple[str, str]]:
        """The (path, token) of every link, after checking that both parts have the
        same ones."""
        in_text = set(LINK.findall(self.text))
        in_html = set(LINK.findall(self.html))
        assert in_text == in_html, (in_text, in_html)
        return in_text

    def token(self, path: str) -> str:
        """The token of the message's one link, which points at ``path``."""
        (link,) = self.links()
        assert link[0] == path, link
        return link[1]


@dataclass
class Mailbox:
    """A running app that mails through SMTP to a sink; every response it gave is kept."""

    api: Api
    sink: SmtpSink
    responses: list[httpx.Response] = field(default_factory=list)
    _read: int = 0

    async def relay(self) -> list[Received]:
        """Run the relay once; the messages that arrived meanwhile."""
        result = await relay_once(self.api.services)
        assert result.count(Outcome.RETRY) == result.count(Outcome.DEAD) == 0, result
        new = self.sink.deliveries[self._read :]
        self._read = len(self.sink.deliveries)
        return [Received(delivery) for delivery in new]

    async def relay_one(self, to: str) -> Received:
        """Relay; exactly one message arrived, for ``to``."""
        (received,) = await self.relay()
        assert received.to == to
        return received

    async def record(self, response: httpx.Response) -> None:
        await response.aread()
        self.responses.append(response)

    def client_from(self, ip: str) -> httpx.AsyncClient:
        client = self.api.client_from(ip)
        client.event_hooks = {"response": [self.record]}
        return client

    def mailed_tokens(self) -> list[str]:
        return [
            token for delivery in self.sink.deliveries for _, token in Received(delivery).links()
        ]

    def check(self) -> None:
        """Every message well formed, and no mailed token in any response."""
        message_ids = []
        for delivery in self.sink.deliveries:
            received = Received(delivery)
            assert received.text.strip()
            assert received.html.strip()
            assert received.message["From"] == MAIL_FROM
            assert received.message["To"] == received.to
            assert received.message["Subject"]
            assert MESSAGE_ID.fullmatch(received.message["Message-ID"])
            message_ids.append(received.message["Message-ID"])
        assert len(set(message_ids)) == len(message_ids), "a Message-ID was used twice"
        seen = [r.text + str(r.headers) for r in self.responses]
        for token in self.mailed_tokens():
            assert not any(token in text for text in seen), "a mailed token was in a response"


@asynccontextmanager
async def mail_app(
    app_factory: AppFactory, sink: SmtpSink | None = None, **settings: Any
) -> AsyncIterator[Mailbox]:
    """The app mailing to ``sink`` (a plain one by default)."""
    with sink or SmtpSink() as running:
        values: dict[str, Any] = {
            "mail_backend": "smtp",
            "smtp_host": running.host,
            "smtp_port": running.port,
            "smtp_security": "none",
            "frontend_url": FRONTEND,
        }
        async with app_factory(**{**values, **settings}) as api:
            box = Mailbox(api, running)
            api.client.event_hooks = {"response": [box.record]}
            yield box
        box.check()


@pytest.fixture
async def mail(app_factory: AppFactory) -> AsyncIterator[Mailbox]:
    async with mail_app(app_factory) as box:
        yield box


async def registered(mail: Mailbox, name: str = "ada") -> tuple[dict[str, Any], str]:
    """A new user and the token of the verification mail it got."""
    user = await mail.api.register(name)
    received = await mail.relay_one(user["email"])
    return user, received.token(VERIFY_PATH)


async def verify(mail: Mailbox, token: str) -> httpx.Response:
    return await mail.api.client.post(VERIFY, json={"token": token})


async def request_reset(mail: Mailbox, email: str) -> httpx.Response:
    return await mail.api.client.post(RESET_REQUEST, json={"email": email})


async def reset(mail: Mailbox, token: str, new_password: str = NEW_PASSWORD) -> httpx.Response:
    return await mail.api.client.post(RESET, json={"token": token, "new_password": new_password})


async def reset_token(mail: Mailbox, email: str) -> str:
    """Ask for a reset of ``email`` (202) and relay: the token of the mail it got."""
    response = await request_reset(mail, email)
    assert response.status_code == 202, response.text
    return (await mail.relay_one(email)).token(RESET_PATH)


async def login(mail: Mailbox, username: str, password: str = PASSWORD) -> httpx.Response:
    return await mail.api.client.post(LOGIN, data={"username": username, "password": password})


async def usable_tokens(api: Api, tokens: list[str], purpose: Purpose) -> int:
    """How many of ``tokens`` would still redeem (looked at, not used)."""
    uow: UnitOfWork = api.container.adapters.uow()
    async with uow:
        repository = uow.repository(EmailTokenRepository)
        now = datetime.now(UTC)
        found = [await repository.find_usable(token_hash(t), purpose, now) for t in tokens]
    return sum(1 for token in found if token is not None)


async def set_active(api: Api, user_id: int, active: bool) -> None:
    uow: UnitOfWork = api.container.adapters.uow()
    async with uow:
        assert await uow.repository(UserRepository).set_active(user_id, active)
        await uow.commit()


# --- Verification ---------------------------------------------------------------------


async def test_registration_mails_a_link_whose_token_verifies_the_address_once(
    mail: Mailbox,
) -> None:
    user = await mail.api.register("ada")
    assert user["is_verified"] is False

    received = await mail.relay_one("ada@example.com")
    token = received.token(VERIFY_PATH)
    assert len(token) >= 43  # 32 random bytes, URL-safe
    assert "ada" in received.text
    response = await verify(mail, token)

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == USER_FIELDS
    assert body["id"] == user["id"]
    assert body["is_verified"] is True
    tokens = await mail.api.login("ada")
    assert (await mail.api.me(tokens["access_token"])).json()["is_verified"] is True
    assert_problem(await verify(mail, token), 400, "invalid_verification_token")
    assert await mail.relay() == []  # verifying mails nothing


async def test_an_unknown_or_absurd_verification_token_is_400(mail: Mailbox) -> None:
    await registered(mail)

    for token in (secrets.token_urlsafe(32), "x", "ä" * 300, "a" * 1024):
        assert_problem(await verify(mail, token), 400, "invalid_verification_token")
    for body in ({}, {"token": ""}, {"token": None}, {"token": "t", "extra": 1}):
        assert_problem(await mail.api.client.post(VERIFY, json=body), 422, "validation_error")


async def test_resend_mails_a_new_link_and_the_previous_one_stops_working(
    mail: Mailbox,
) -> None:
    user, first = await registered(mail)
    tokens = await mail.api.login("ada")

    response = await mail.api.client.post(RESEND, headers=bearer(tokens["access_token"]))

    assert response.status_code == 202, response.text
    assert response.content == b""
    second = (await mail.relay_one(user["email"])).token(VERIFY_PATH)
    assert second != first
    assert_problem(await verify(mail, first), 400, "invalid_verification_token")
    response = await verify(mail, second)
    assert response.status_code == 200, response.text
    assert response.json()["is_verified"] is True


async def test_resend_needs_a_bearer_token_and_is_409_once_verified(mail: Mailbox) -> None:
    _, token = await registered(mail)
    tokens = await mail.api.login("ada")
    assert_problem(await mail.api.client.post(RESEND), 401, "not_authenticated")
    assert (await verify(mail, token)).status_code == 200

    response = await mail.api.client.post(RESEND, headers=bearer(tokens["access_token"]))

    assert_problem(response, 409, "already_verified")
    assert await mail.relay() == []


async def test_a_verified_user_changing_the_email_is_unverified_and_both_addresses_hear(
    mail: Mailbox,
) -> None:
    _, token = await registered(mail)
    assert (await verify(mail, token)).status_code == 200
    tokens = await mail.api.login("ada")

    response = await mail.api.client.patch(
        ME,
        headers=bearer(tokens["access_token"]),
        json={"email": "ada.new@example.com", "current_password": PASSWORD},
    )

    assert response.status_code == 200, response.text
    assert response.json()["email"] == "ada.new@example.com"
    assert response.json()["is_verified"] is False
    received = {message.to: message for message in await mail.relay()}
    assert set(received) == {"ada.new@example.com", "ada@example.com"}
    notice = received["ada@example.com"]
    assert notice.links() == set()  # a notice, with no link to follow
    assert "ada.new@example.com" not in notice.text + notice.html  # masked
    new_token = received["ada.new@example.com"].token(VERIFY_PATH)
    response = await verify(mail, new_token)
    assert response.status_code == 200, response.text
    assert response.json()["email"] == "ada.new@example.com"
    assert response.json()["is_verified"] is True


async def test_a_link_mailed_to_the_old_address_stops_working_when_the_email_changes(
    mail: Mailbox,
) -> None:
    _, old_token = await registered(mail)
    tokens = await mail.api.login("ada")
    response = await mail.api.client.patch(
        ME,
        headers=bearer(tokens["access_token"]),
        json={"email": "ada.new@example.com", "current_password": PASSWORD},
    )
    assert response.status_code == 200, response.text
    received = {message.to: message for message in await mail.relay()}

    assert_problem(await verify(mail, old_token), 400, "invalid_verification_token")

    assert (await mail.api.me(tokens["access_token"])).json()["is_verified"] is False
    new_token = received["ada.new@example.com"].token(VERIFY_PATH)
    assert (await verify(mail, new_token)).json()["is_verified"] is True


async def test_a_verification_queued_for_an_address_changed_before_it_went_is_not_sent(
    mail: Mailbox,
) -> None:
    await mail.api.register("ada")  # its verification mail waits in the outbox
    tokens = await mail.api.login("ada")
    response = await mail.api.client.patch(
        ME,
        headers=bearer(tokens["access_token"]),
        json={"email": "ada.new@example.com", "current_password": PASSWORD},
    )
    assert response.status_code == 200, response.text

    received = await mail.relay()

    # The old address gets the notice only: no link for an address the account left.
    by_address: dict[str, list[Received]] = {}
    for message in received:
        by_address.setdefault(message.to, []).append(message)
    assert sorted(by_address) == ["ada.new@example.com", "ada@example.com"]
    (notice,) = by_address["ada@example.com"]
    assert notice.links() == set()
    (verification,) = by_address["ada.new@example.com"]
    assert (await verify(mail, verification.token(VERIFY_PATH))).status_code == 200


async def test_setting_the_email_it_already_has_unverifies_nothing_and_mails_nothing(
    mail: Mailbox,
) -> None:
    _, token = await registered(mail)
    assert (await verify(mail, token)).status_code == 200
    tokens = await mail.api.login("ada")

    response = await mail.api.client.patch(
        ME,
        headers=bearer(tokens["access_token"]),
        json={"email": "ADA@Example.com", "current_password": PASSWORD},
    )

    assert response.status_code == 200, response.text
    assert response.json()["email"] == "ada@example.com"
    assert response.json()["is_verified"] is True
    assert await mail.relay() == []


# --- Password reset -------------------------------------------------------------------


async def test_a_reset_request_for_an_active_account_is_202_and_mails_a_reset_link(
    mail: Mailbox,
) -> None:
    await registered(mail)

    response = await request_reset(mail, "ADA@Example.com ")

    assert response.status_code == 202, response.text
    assert response.content == b""
    received = await mail.relay_one("ada@example.com")
    token = received.token(RESET_PATH)
    assert len(token) >= 43


async def test_a_reset_request_for_an_unknown_address_is_the_same_202_and_mails_nothing(
    mail: Mailbox,
) -> None:
    await registered(mail)

    response = await request_reset(mail, "nobody@example.com")

    assert response.status_code == 202, response.text
    assert response.content == b""
    assert await mail.relay() == []


async def test_a_reset_request_for_an_inactive_account_mails_nothing(mail: Mailbox) -> None:
    user, _ = await registered(mail)
    await set_active(mail.api, user["id"], False)

    response = await request_reset(mail, user["email"])

    assert response.status_code == 202, response.text
    assert await mail.relay() == []


async def test_the_reset_request_answer_is_byte_identical_for_an_existing_and_an_unknown_address(
    mail: Mailbox,
) -> None:
    await registered(mail)
    inactive, _ = await registered(mail, "bob")
    await set_active(mail.api, inactive["id"], False)

    existing = await request_reset(mail, "ada@example.com")
    unknown = await request_reset(mail, "nobody@example.com")
    of_inactive = await request_reset(mail, inactive["email"])

    def shape(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = [
            (name, value)
            for name, value in response.headers.multi_items()
            if name not in {"date", "x-request-id"}
        ]
        return response.status_code, headers, response.content

    assert shape(existing) == shape(unknown) == shape(of_inactive)
    assert existing.status_code == 202
    assert [message.to for message in await mail.relay()] == ["ada@example.com"]


async def test_a_reset_sets_the_password_ends_every_session_and_verifies_the_address(
    mail: Mailbox,
) -> None:
    await registered(mail)
    before = await mail.api.login("ada")
    token = await reset_token(mail, "ada@example.com")

    response = await reset(mail, token)

    assert response.status_code == 204, response.text
    assert response.content == b""
    assert_problem(await login(mail, "ada"), 401, "invalid_credentials")
    after = await mail.api.login("ada", NEW_PASSWORD)
    assert_problem(await mail.api.me(before["access_token"]), 401, "invalid_token")
    refreshed = await mail.api.client.post(REFRESH, json={"refresh_token": before["refresh_token"]})
    assert_problem(refreshed, 401, "invalid_token")
    me = await mail.api.me(after["access_token"])
    assert me.json()["is_verified"] is True
    notice = await mail.relay_one("ada@example.com")
    assert notice.links() == set()
    assert "password" in notice.message["Subject"].lower()


async def test_a_reset_token_works_once(mail: Mailbox) -> None:
    await registered(mail)
    token = await reset_token(mail, "ada@example.com")
    assert (await reset(mail, token)).status_code == 204

    response = await reset(mail, token, "yet another passphrase")

    assert_problem(response, 400, "invalid_reset_token")
    await mail.api.login("ada", NEW_PASSWORD)


async def test_an_unknown_reset_token_or_a_verification_token_is_400(mail: Mailbox) -> None:
    _, verification = await registered(mail)

    assert_problem(await reset(mail, secrets.token_urlsafe(32)), 400, "invalid_reset_token")
    assert_problem(await reset(mail, verification), 400, "invalid_reset_token")
    assert_problem(await reset(mail, "r" * 1024), 400, "invalid_reset_token")
    token = await reset_token(mail, "ada@example.com")
    assert_problem(await verify(mail, token), 400, "invalid_verification_token")
    # Each still works for what it was made for.
    assert (await verify(mail, verification)).status_code == 200
    assert (await reset(mail, token)).status_code == 204


async def test_a_second_reset_request_supersedes_the_first_link(mail: Mailbox) -> None:
    await registered(mail)
    first = await reset_token(mail, "ada@example.com")
    second = await reset_token(mail, "ada@example.com")

    assert_problem(await reset(mail, first), 400, "invalid_reset_token")
    assert (await reset(mail, second)).status_code == 204


async def test_of_reset_links_relayed_in_one_batch_only_one_stays_usable(
    mail: Mailbox,
) -> None:
    # The relay prepares several messages of a batch at once (on PostgreSQL): issues
    # for one user take turns, so only the last link made stays usable.
    await registered(mail)
    for _ in range(8):
        assert (await request_reset(mail, "ada@example.com")).status_code == 202

    received = await mail.relay()

    assert [message.to for message in received] == ["ada@example.com"] * 8
    tokens = [message.token(RESET_PATH) for message in received]
    assert len(set(tokens)) == 8
    assert await usable_tokens(mail.api, tokens, Purpose.PASSWORD_RESET) == 1


@pytest.mark.parametrize("new_password", ["short", "password", "12345678", "x" * 129])
async def test_a_too_short_long_or_common_new_password_is_422_and_the_token_still_works(
    mail: Mailbox, new_password: str
) -> None:
    await registered(mail)
    token = await reset_token(mail, "ada@example.com")

    response = await reset(mail, token, new_password)

    body = assert_problem(response, 422, "validation_error")
    assert any("new_password" in error["loc"] for error in body["errors"]), body
    await mail.api.login("ada")
    assert (await reset(mail, token)).status_code == 204


async def test_a_password_changed_otherwise_ends_the_outstanding_reset_link(
    mail: Mailbox,
) -> None:
    await registered(mail)
    token = await reset_token(mail, "ada@example.com")
    tokens = await mail.api.login("ada")
    response = await mail.api.client.patch(
        ME,
        headers=bearer(tokens["access_token"]),
        json={"password": NEW_PASSWORD, "current_password": PASSWORD},
    )
    assert response.status_code == 200, response.text

    assert_problem(await reset(mail, token, "yet another passphrase"), 400, "invalid_reset_token")

    await mail.api.login("ada", NEW_PASSWORD)
    notice = await mail.relay_one("ada@example.com")
    assert notice.links() == set()


async def test_a_reset_link_of_a_deactivated_account_no_longer_works(mail: Mailbox) -> None:
    user, _ = await registered(mail)
    token = await reset_token(mail, user["email"])
    await set_active(mail.api, user["id"], False)

    assert_problem(await reset(mail, token), 400, "invalid_reset_token")

    await set_active(mail.api, user["id"], True)
    await mail.api.login("ada")  # the password is unchanged


async def test_a_reset_link_mailed_to_a_former_address_is_400_and_changes_nothing(
    mail: Mailbox,
) -> None:
    _, verification = await registered(mail)
    assert (await verify(mail, verification)).status_code == 200
    token = await reset_token(mail, "ada@example.com")
    tokens = await mail.api.login("ada")
    response = await mail.api.client.patch(
        ME,
        headers=bearer(tokens["access_token"]),
        json={"email": "ada.new@example.com", "current_password": PASSWORD},
    )
    assert response.status_code == 200, response.text
    await mail.relay()

    # Whoever reads the old mailbox cannot take the account back.
    assert_problem(await reset(mail, token), 400, "invalid_reset_token")

    after = await mail.api.login("ada")  # the password is unchanged
    me = (await mail.api.me(after["access_token"])).json()
    assert (me["email"], me["is_verified"]) == ("ada.new@example.com", False)


async def test_a_reset_link_is_400_after_an_admin_changes_the_address(
    mail: Mailbox,
) -> None:
    user, _ = await registered(mail)
    token = await reset_token(mail, "ada@example.com")
    admin = await admin_tokens(mail)

    response = await mail.api.client.patch(
        f"/api/v1/admin/users/{user['id']}",
        headers=bearer(admin),
        json={"email": "ada.moved@example.com"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["is_verified"] is False
    received = {r.to for r in await mail.relay()}
    assert received == {"ada@example.com", "ada.moved@example.com"}  # notice and link

    assert_problem(await reset(mail, token), 400, "invalid_reset_token")


async def test_a_reset_link_is_400_after_the_account_was_deactivated_and_reactivated(
    mail: Mailbox,
) -> None:
    user, _ = await registered(mail)
    token = await reset_token(mail, "ada@example.com")
    admin = await admin_tokens(mail)
    for active in (False, True):
        response = await mail.api.client.patch(
            f"/api/v1/admin/users/{user['id']}",
            headers=bearer(admin),
            json={"is_active": active},
        )
        assert response.status_code == 200, response.text

    assert_problem(await reset(mail, token), 400, "invalid_reset_token")
    await mail.api.login("ada")


async def test_an_admin_cannot_set_a_new_address_verified_nor_move_their_own(
    mail: Mailbox,
) -> None:
    user, _ = await registered(mail)
    admin = await admin_tokens(mail)
    admin_id = (await mail.api.me(admin)).json()["id"]

    response = await mail.api.client.patch(
        f"/api/v1/admin/users/{user['id']}",
        headers=bearer(admin),
        json={"email": "mallory@example.com", "is_verified": True},
    )
    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"][0]["loc"] == ["body", "is_verified"]
    response = await mail.api.client.patch(
        f"/api/v1/admin/users/{admin_id}",
        headers=bearer(admin),
        json={"email": "mallory@example.com"},
    )
    assert_problem(response, 409, "cannot_change_own_access")

    assert await mail.relay() == []  # nothing changed, nothing mailed
    me = (await mail.api.me(admin)).json()
    assert me["email"] == "root@example.com"


async def admin_tokens(mail: Mailbox) -> str:
    """A superuser's access token (its verification mail relayed away)."""
    await mail.api.register("root")
    uow: UnitOfWork = mail.api.container.adapters.uow()
    async with uow:
        root = await uow.repository(UserRepository).get_by_login("root")
        assert root is not None
        assert root.id is not None
        assert await uow.repository(UserRepository).set_superuser(root.id, True)
        await uow.commit()
    await mail.relay_one("root@example.com")
    return str((await mail.api.login("root"))["access_token"])


# --- A confirmed address required to log in --------------------------------------------


async def test_with_required_verification_an_unverified_login_is_403_and_opens_no_session(
    app_factory: AppFactory,
) -> None:
    async with mail_app(app_factory, require_verified_email=True) as mail:
        _, token = await registered(mail)

        assert_problem(await login(mail, "ada"), 403, "email_not_verified")
        assert_problem(
            await mail.api.client.post(
                LOGIN, json={"username": "ada@example.com", "password": PASSWORD}
            ),
            403,
            "email_not_verified",
        )
        assert_problem(await login(mail, "ada", "not the password"), 401, "invalid_credentials")
        assert_problem(await login(mail, "nobody"), 401, "invalid_credentials")

        assert (await verify(mail, token)).status_code == 200
        tokens = await mail.api.login("ada")
        sessions = await mail.api.client.get(SESSIONS, headers=bearer(tokens["access_token"]))
        assert sessions.status_code == 200, sessions.text
        (only,) = sessions.json()
        assert only["current"] is True


async def test_with_required_verification_a_user_who_changes_the_email_must_confirm_again(
    app_factory: AppFactory,
) -> None:
    async with mail_app(app_factory, require_verified_email=True) as mail:
        _, token = await registered(mail)
        assert (await verify(mail, token)).status_code == 200
        tokens = await mail.api.login("ada")
        response = await mail.api.client.patch(
            ME,
            headers=bearer(tokens["access_token"]),
            json={"email": "ada.new@example.com", "current_password": PASSWORD},
        )
        assert response.status_code == 200, response.text
        received = {message.to: message for message in await mail.relay()}

        assert_problem(await login(mail, "ada"), 403, "email_not_verified")

        assert (await verify(mail, received["ada.new@example.com"].token(VERIFY_PATH))).is_success
        await mail.api.login("ada")


# --- Rate limits ----------------------------------------------------------------------


async def test_reset_requests_are_limited_to_5_per_address_whether_or_not_it_has_an_account(
    app_factory: AppFactory,
) -> None:
    async with mail_app(app_factory, rate_limit_enabled=True) as mail:
        await registered(mail)
        for address in ("ada@example.com", "nobody@example.com"):
            for attempt in range(5):
                # A new client address each time: only the per-address limit counts.
                async with mail.client_from(f"192.0.2.{attempt + 1}") as client:
                    response = await client.post(RESET_REQUEST, json={"email": address})
                assert response.status_code == 202, (address, attempt, response.text)
            async with mail.client_from("192.0.2.100") as client:
                # The address is counted as stored: in any case, with blanks.
                response = await client.post(RESET_REQUEST, json={"email": f" {address.upper()}"})
            assert_problem(response, 429, "rate_limited")
            assert 1 <= int(response.headers["retry-after"]) <= 3600

        # The five accepted requests for the account were mailed; nothing else.
        received = await mail.relay()
        assert [message.to for message in received] == ["ada@example.com"] * 5


async def test_reset_requests_are_limited_to_5_per_client_ip_across_addresses(
    app_factory: AppFactory,
) -> None:
    async with mail_app(app_factory, rate_limit_enabled=True) as mail:
        for n in range(5):
            response = await request_reset(mail, f"someone{n}@example.com")
            assert response.status_code == 202, (n, response.text)

        response = await request_reset(mail, "someone-else@example.com")

        assert_problem(response, 429, "rate_limited")
        async with mail.client_from("192.0.2.77") as client:
            response = await client.post(RESET_REQUEST, json={"email": "someone-else@example.com"})
        assert response.status_code == 202, response.text
        assert await mail.relay() == []


async def test_token_redemptions_are_limited_per_ip_and_a_refused_one_keeps_the_token(
    app_factory: AppFactory,
) -> None:
    async with mail_app(app_factory, rate_limit_enabled=True) as mail:
        _, token = await registered(mail)
        for attempt in range(10):
            response = await verify(mail, secrets.token_urlsafe(32))
            assert_problem(response, 400, "invalid_verification_token")

        refused = await verify(mail, token)
        refused_reset = await reset(mail, secrets.token_urlsafe(32))

        assert_problem(refused, 429, "rate_limited")
        assert_problem(refused_reset, 429, "rate_limited")
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        async with mail.client_from("192.0.2.9") as client:
            response = await client.post(VERIFY, json={"token": token})
        assert response.status_code == 200, response.text


async def test_resends_are_limited_to_3_per_hour_per_user_from_any_address(
    app_factory: AppFactory,
) -> None:
    async with mail_app(app_factory, rate_limit_enabled=True) as mail:
        user, _ = await registered(mail)
        tokens = await mail.api.login("ada")
        links = []
        for attempt in range(3):
            async with mail.client_from(f"192.0.2.{attempt + 1}") as client:
                response = await client.post(RESEND, headers=bearer(tokens["access_token"]))
            assert response.status_code == 202, (attempt, response.text)
            links.append((await mail.relay_one(user["email"])).token(VERIFY_PATH))

        async with mail.client_from("192.0.2.50") as client:
            response = await client.post(RESEND, headers=bearer(tokens["access_token"]))

        assert_problem(response, 429, "rate_limited")
        assert 1 <= int(response.headers["retry-after"]) <= 3600
        assert await mail.relay() == []
        # Only the last link works.
        *superseded, last = links
        for token in superseded:
            assert_problem(await verify(mail, token), 400, "invalid_verification_token")
        assert (await verify(mail, last)).status_code == 200


# --- Mail over STARTTLS with authentication ----------------------------------------------


async def test_mail_goes_out_over_starttls_with_authentication(app_factory: AppFactory) -> None:
    sink = SmtpSink(starttls=True, auth=(SMTP_USER, SMTP_PASSWORD))

    def trust_the_sink(container: Container) -> None:
        transport = SmtpTransport(
            sink.host,
            sink.port,
            sender=MAIL_FROM,
            username=SMTP_USER,
            password=SMTP_PASSWORD,
            security="starttls",
            tls_context=sink.client_tls_context(),
        )
        container.adapters.transport.override(providers.Object(transport))

    async with mail_app(
        app_factory,
        sink,
        configure=trust_the_sink,
        smtp_security="starttls",
        smtp_username=SMTP_USER,
        smtp_password=SMTP_PASSWORD,
    ) as mail:
        _, token = await registered(mail)
        response = await verify(mail, token)

    assert response.status_code == 200, response.text
    (delivery,) = sink.deliveries
    assert delivery.encrypted
    assert delivery.login == SMTP_USER
    assert delivery.mail_from == "no-reply@localhost"


# --- Every message, every response -------------------------------------------------------


async def test_every_message_has_both_parts_a_message_id_and_no_token_reaches_a_response(
    mail: Mailbox,
) -> None:
    user, verification = await registered(mail)
    assert (await verify(mail, verification)).status_code == 200
    tokens = await mail.api.login("ada")
    await mail.api.client.patch(
        ME,
        headers=bearer(tokens["access_token"]),
        json={"email": "ada.new@example.com", "current_password": PASSWORD},
    )
    changed = await mail.relay()
    reset_link = await reset_token(mail, "ada.new@example.com")
    assert (await reset(mail, reset_link)).status_code == 204
    notice = await mail.relay_one("ada.new@example.com")

    subjects = {m.message["Subject"] for m in [*changed, notice]}
    assert len(subjects) == 3  # verification, address changed, password changed
    mail.check()
    assert len(mail.sink.deliveries) == 5
    assert len(mail.mailed_tokens()) == 3
    bodies = b"".join(response.content for response in mail.responses)
    assert user["email"].encode() in bodies  # the responses were recorded
    for token in mail.mailed_tokens():
        assert token.encode() not in bodies


async def test_email_changes_are_limited_per_user_and_each_address_gets_a_bounded_number_of_mails(
    app_factory: AppFactory,
) -> None:
    async with mail_app(
        app_factory, rate_limit_enabled=True, mail_per_recipient_limit="2/day"
    ) as mail:
        await registered(mail)  # ada@example.com: 1 mail
        tokens = await mail.api.login("ada")
        moves = []
        # Back and forth between two addresses: each change mails both of them.
        for index, address in enumerate(["victim@example.com", "ada@example.com"] * 2):
            async with mail.client_from(f"192.0.2.{index + 1}") as client:
                moves.append(
                    await client.patch(
                        ME,
                        headers=bearer(tokens["access_token"]),
                        json={"email": address, "current_password": PASSWORD},
                    )
                )

        assert [r.status_code for r in moves[:3]] == [200, 200, 200]
        assert_problem(moves[3], 429, "rate_limited")
        # Unchanged fields are not a change: a profile edit sending the same address passes.
        same = await mail.api.client.patch(
            ME,
            headers=bearer(tokens["access_token"]),
            json={
                "email": "victim@example.com",
                "full_name": "Ada",
                "current_password": PASSWORD,
            },
        )
        assert same.status_code == 200, same.text
        result = await relay_once(mail.api.services)
        received = [Received(d).to for d in mail.sink.deliveries[1:]]
        # The victim was sent 2 links and a notice, ada 2 notices (the link to ada went
        # stale with the third move) after the registration's mail: 2 a day each.
        assert received.count("victim@example.com") == 2
        assert received.count("ada@example.com") == 1
        assert result.count(Outcome.CAPPED) == 2


async def test_resets_asked_for_by_address_move_one_metric_label_whether_an_account_exists(
    mail: Mailbox,
) -> None:
    await registered(mail)

    async def deliveries() -> dict[str, float]:
        response = await mail.api.client.get("/metrics")
        pattern = r'mail_deliveries_total\{outcome="(\w+)",template="password_reset"\} (\S+)'
        return {outcome: float(n) for outcome, n in re.findall(pattern, response.text)}

    before = await deliveries()
    await request_reset(mail, "ada@example.com")
    await mail.relay()
    after_existing = await deliveries()
    await request_reset(mail, "nobody@example.com")
    await mail.relay()
    after_unknown = await deliveries()

    def moved(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
        return {k: b[k] - a.get(k, 0.0) for k in b if b[k] != a.get(k, 0.0)}

    assert moved(before, after_existing) == moved(after_existing, after_unknown) == {"handled": 1}


# --- A new verification link by address -----------------------------------------------


async def test_a_user_who_cannot_log_in_asks_for_a_new_verification_link_by_address(
    app_factory: AppFactory,
) -> None:
    async with mail_app(app_factory, require_verified_email=True) as mail:
        _, expired = await registered(mail)
        await mail.api.register("done")
        done_token = (await mail.relay_one("done@example.com")).token(VERIFY_PATH)
        assert (await verify(mail, done_token)).status_code == 200
        assert_problem(await login(mail, "ada"), 403, "email_not_verified")

        answers = [
            await mail.api.client.post(RESEND, json={"email": address})
            for address in ("ADA@example.com", "nobody@example.com", "done@example.com")
        ]

        assert [(r.status_code, r.content) for r in answers] == [(202, b"")] * 3
        # Only the unconfirmed account gets a link; the older one stops working.
        fresh = (await mail.relay_one("ada@example.com")).token(VERIFY_PATH)
        assert_problem(await verify(mail, expired), 400, "invalid_verification_token")
        assert (await verify(mail, fresh)).status_code == 200
        assert (await login(mail, "ada")).status_code == 200
        for body in ({}, {"email": "not an address"}, {"email": "a@example.com", "x": 1}):
            response = await mail.api.client.post(RESEND, json=body)
            assert_problem(response, 422, "validation_error")


async def test_verification_links_by_address_are_limited_per_address_and_per_ip(
    app_factory: AppFactory,
) -> None:
    async with mail_app(app_factory, rate_limit_enabled=True) as mail:
        await registered(mail)
        for attempt in range(3):
            async with mail.client_from(f"192.0.2.{attempt + 1}") as client:
                response = await client.post(RESEND, json={"email": "ada@example.com"})
            assert response.status_code == 202, response.text
        async with mail.client_from("192.0.2.50") as client:
            response = await client.post(RESEND, json={"email": "ADA@example.com"})
        assert_problem(response, 429, "rate_limited")
        async with mail.client_from("192.0.2.60") as client:
            for index in range(3):
                response = await client.post(RESEND, json={"email": f"n{index}@example.com"})
                assert response.status_code == 202, response.text
            response = await client.post(RESEND, json={"email": "n9@example.com"})
        assert_problem(response, 429, "rate_limited")
