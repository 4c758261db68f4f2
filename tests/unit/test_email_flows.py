"""The mailed-token flows, over the fakes: what is queued, what the relay makes of it,
and what a token can do (once)."""

from __future__ import annotations

import re

import pytest

from application.admin import SetActive, UpdateUser, UserChanges
from application.auth import LogIn, LogOutEverywhere
from application.email import (
    EmailPolicy,
    RequestPasswordReset,
    RequestVerificationLink,
    ResendVerification,
    ResetPassword,
    VerifyEmail,
)
from application.outbox import Outcome, RelayOutbox, RelayPolicy, RetryOutbox
from application.users import NewUser, ProfileChanges, RegisterUser, UpdateProfile
from domain.audit import Action, Actor, ActorType, AuditEvent, acting_as
from domain.email_tokens import Purpose
from domain.errors import (
    AlreadyVerified,
    CannotChangeOwnAccess,
    EmailNotVerified,
    InvalidCredentials,
    InvalidResetToken,
    InvalidValue,
    InvalidVerificationToken,
)
from domain.mail import Mail
from domain.model import User
from domain.outbox import Status, Template
from domain.ports import UowFactory
from tests.fakes import (
    POLICY,
    FakeClock,
    FakeFailedLoginCounter,
    FakeHasher,
    FakeMailTemplates,
    FakeMailTransport,
    FakeRateLimits,
    Store,
)
from tests.unit.conftest import PASSWORD, principal_for, seed_user

EMAIL = EmailPolicy(frontend_url="https://app.example.com")
NEW_PASSWORD = "a brand new secret"


@pytest.fixture
def transport() -> FakeMailTransport:
    return FakeMailTransport()


@pytest.fixture
def relay(uow_factory: UowFactory, transport: FakeMailTransport, clock: FakeClock) -> RelayOutbox:
    return RelayOutbox(
        uow_factory,
        transport,
        FakeMailTemplates(),
        clock,
        EMAIL,
        RelayPolicy(batch_size=10),
        FakeRateLimits(),
    )


def token_in(text: str, path: str) -> str:
    found = re.search(re.escape(f"https://app.example.com{path}?token=") + r"([\w-]+)", text)
    assert found, text
    return found.group(1)


async def last_token(relay: RelayOutbox, transport: FakeMailTransport, path: str) -> str:
    await relay()
    assert transport.sent, "no mail went out"
    mail = transport.sent[-1]
    assert token_in(mail.html, path) == token_in(mail.text, path)
    return token_in(mail.text, path)


async def test_registration_queues_a_verification_mail_in_its_own_transaction(
    uow_factory: UowFactory, hasher: FakeHasher, clock: FakeClock, store: Store
) -> None:
    user = await RegisterUser(uow_factory, hasher, clock)(
        NewUser(email="ada@example.com", username="ada", password=PASSWORD)
    )

    (message,) = store.outbox.values()
    assert (message.template, message.recipient, message.user_id) == (
        Template.VERIFY_EMAIL,
        "ada@example.com",
        user.id,
    )
    assert not user.is_verified
    # The token is made by the relay when it sends: none exists yet, none is queued.
    assert store.email_tokens == {}
    assert message.context == {}


async def test_a_verification_link_confirms_the_address_once(
    relay: RelayOutbox, transport: FakeMailTransport, uow_factory: UowFactory,
    clock: FakeClock, store: Store, ada: User,
) -> None:  # fmt: skip
    await ResendVerification(uow_factory, clock)(principal_for(store, ada))
    token = await last_token(relay, transport, "/verify-email")
    # Only the hash is stored.
    assert all(token not in repr(stored) for stored in store.email_tokens.values())

    verified = await VerifyEmail(uow_factory, clock)(token)

    assert verified.is_verified
    assert store.users[ada.id].is_verified  # type: ignore[index]
    with pytest.raises(InvalidVerificationToken):
        await VerifyEmail(uow_factory, clock)(token)
    with pytest.raises(AlreadyVerified):
        await ResendVerification(uow_factory, clock)(principal_for(store, ada))


async def test_a_new_verification_link_ends_the_older_one(
    relay: RelayOutbox, transport: FakeMailTransport, uow_factory: UowFactory,
    clock: FakeClock, store: Store, ada: User,
) -> None:  # fmt: skip
    resend = ResendVerification(uow_factory, clock)
    await resend(principal_for(store, ada))
    first = await last_token(relay, transport, "/verify-email")
    await resend(principal_for(store, ada))
    second = await last_token(relay, transport, "/verify-email")

    with pytest.raises(InvalidVerificationToken):
        await VerifyEmail(uow_factory, clock)(first)
    assert (await VerifyEmail(uow_factory, clock)(second)).is_verified


async def test_an_expired_or_made_up_verification_token_is_refused(
    relay: RelayOutbox, transport: FakeMailTransport, uow_factory: UowFactory,
    clock: FakeClock, store: Store, ada: User,
) -> None:  # fmt: skip
    await ResendVerification(uow_factory, clock)(principal_for(store, ada))
    token = await last_token(relay, transport, "/verify-email")
    clock.advance(hours=48, seconds=1)

    for bad in (token, "made-up", "x" * 5000, ""):
        with pytest.raises(InvalidVerificationToken):
            await VerifyEmail(uow_factory, clock)(bad)
    assert not store.users[ada.id].is_verified  # type: ignore[index]


async def test_a_changed_address_voids_the_link_sent_to_the_old_one_and_tells_it(
    relay: RelayOutbox, transport: FakeMailTransport, uow_factory: UowFactory,
    clock: FakeClock, store: Store, hasher: FakeHasher, failed_logins: FakeFailedLoginCounter,
) -> None:  # fmt: skip
    ada = seed_user(store)
    await ResendVerification(uow_factory, clock)(principal_for(store, ada))
    old_link_token = await last_token(relay, transport, "/verify-email")

    update = UpdateProfile(uow_factory, hasher, clock, failed_logins)
    changed = await update(
        principal_for(store, store.users[ada.id]),  # type: ignore[index]
        ProfileChanges(email="ada@new.example.com", current_password="correct horse battery"),
    )

    assert not changed.is_verified
    await relay()
    sent = {(mail.to, mail.subject) for mail in transport.sent[-2:]}
    assert sent == {
        ("ada@new.example.com", Template.VERIFY_EMAIL.value),
        ("ada@example.com", Template.EMAIL_CHANGED.value),
    }
    notice = next(m for m in transport.sent if m.subject == Template.EMAIL_CHANGED.value)
    assert "ada@new.example.com" not in notice.text  # masked
    with pytest.raises(InvalidVerificationToken):
        await VerifyEmail(uow_factory, clock)(old_link_token)


async def test_a_reset_request_records_the_address_alone_and_only_an_active_account_gets_mail(
    relay: RelayOutbox, transport: FakeMailTransport, uow_factory: UowFactory,
    clock: FakeClock, store: Store,
) -> None:  # fmt: skip
    seed_user(store, email="ada@example.com", username="ada")
    seed_user(store, email="off@example.com", username="off", is_active=False)
    request = RequestPasswordReset(uow_factory, clock)

    for address in ("ADA@example.com", "nobody@example.com", "off@example.com"):
        await request(address)

    queued = sorted(m.recipient for m in store.outbox.values())
    assert queued == ["ada@example.com", "nobody@example.com", "off@example.com"]
    assert all(m.user_id is None for m in store.outbox.values())
    result = await relay()
    assert sorted(d.outcome for d in result.deliveries) == [
        Outcome.DROPPED,
        Outcome.DROPPED,
        Outcome.SENT,
    ]
    assert [mail.to for mail in transport.sent] == ["ada@example.com"]
    assert all(m.status is Status.SENT for m in store.outbox.values())
    with pytest.raises(InvalidValue):
        await request("not an address")


async def test_a_reset_sets_the_password_ends_sessions_confirms_the_address_and_tells_the_user(
    relay: RelayOutbox, transport: FakeMailTransport, uow_factory: UowFactory,
    clock: FakeClock, store: Store, hasher: FakeHasher, ada: User,
) -> None:  # fmt: skip
    request = RequestPasswordReset(uow_factory, clock)
    await request(ada.email)
    first = await last_token(relay, transport, "/reset-password")
    await request(ada.email)
    token = await last_token(relay, transport, "/reset-password")

    await ResetPassword(uow_factory, hasher, clock)(token, NEW_PASSWORD)

    stored = store.users[ada.id]  # type: ignore[index]
    assert stored.password_hash == f"new${NEW_PASSWORD}"
    assert stored.token_version == ada.token_version + 1
    assert stored.is_verified
    notices = [m for m in store.outbox.values() if m.template is Template.PASSWORD_CHANGED]
    assert [m.recipient for m in notices] == [ada.email]
    for used in (token, first):  # used, and superseded
        with pytest.raises(InvalidResetToken):
            await ResetPassword(uow_factory, hasher, clock)(used, "yet another secret")


async def test_a_bad_reset_token_costs_no_hash_and_a_bad_password_is_refused_first(
    uow_factory: UowFactory, clock: FakeClock, hasher: FakeHasher
) -> None:
    reset = ResetPassword(uow_factory, hasher, clock)
    with pytest.raises(InvalidResetToken):
        await reset("made-up", NEW_PASSWORD)
    assert hasher.calls == []
    with pytest.raises(InvalidValue) as refused:
        await reset("made-up", "short")
    assert refused.value.field == "new_password"


async def test_any_other_password_change_ends_outstanding_reset_links(
    relay: RelayOutbox, transport: FakeMailTransport, uow_factory: UowFactory,
    clock: FakeClock, store: Store, hasher: FakeHasher, failed_logins: FakeFailedLoginCounter,
    ada: User,
) -> None:  # fmt: skip
    await RequestPasswordReset(uow_factory, clock)(ada.email)
    token = await last_token(relay, transport, "/reset-password")

    await UpdateProfile(uow_factory, hasher, clock, failed_logins)(
        principal_for(store, ada),
        ProfileChanges(password=NEW_PASSWORD, current_password="correct horse battery"),
    )

    with pytest.raises(InvalidResetToken):
        await ResetPassword(uow_factory, hasher, clock)(token, "yet another secret")
    assert any(m.template is Template.PASSWORD_CHANGED for m in store.outbox.values())


async def test_a_required_confirmation_blocks_a_right_password_only(
    uow_factory: UowFactory, hasher: FakeHasher, clock: FakeClock,
    failed_logins: FakeFailedLoginCounter, codec: object, store: Store, ada: User,
) -> None:  # fmt: skip
    log_in = LogIn(
        uow_factory, hasher, codec, clock, failed_logins, POLICY,  # type: ignore[arg-type]
        require_verified_email=True,
    )  # fmt: skip
    with pytest.raises(InvalidCredentials):
        await log_in("ada", "wrong password!")
    with pytest.raises(EmailNotVerified):
        await log_in("ada", PASSWORD)
    assert store.sessions == {}

    store.users[ada.id].is_verified = True  # type: ignore[index]
    assert (await log_in("ada", PASSWORD)).user.id == ada.id


async def test_a_failed_send_is_retried_later_and_dead_after_the_last_attempt(
    uow_factory: UowFactory, transport: FakeMailTransport, clock: FakeClock, store: Store,
    ada: User,
) -> None:  # fmt: skip
    relay = RelayOutbox(
        uow_factory, transport, FakeMailTemplates(), clock, EMAIL,
        RelayPolicy(batch_size=10), FakeRateLimits(),
    )  # fmt: skip
    await ResendVerification(uow_factory, clock)(principal_for(store, ada))
    transport.fail_with = "smtp: 451 try later"
    max_attempts = RelayPolicy().retry.max_attempts

    for attempt in range(1, max_attempts + 1):
        (delivery,) = (await relay()).deliveries
        (message,) = store.outbox.values()
        assert delivery.attempt == attempt
        assert message.last_error == "smtp: 451 try later"
        if attempt < max_attempts:
            assert delivery.outcome is Outcome.RETRY
            assert message.next_attempt_at > clock.now()
            assert (await relay()).deliveries == []  # not due yet
            clock.current = message.next_attempt_at
        else:
            assert delivery.outcome is Outcome.DEAD
            assert message.status is Status.DEAD
    assert transport.sent == []
    clock.advance(days=1)
    assert (await relay()).deliveries == []  # dead stays dead


async def test_a_message_whose_claim_lapsed_is_not_settled_by_its_first_relay(
    uow_factory: UowFactory, clock: FakeClock, store: Store, ada: User
) -> None:
    await ResendVerification(uow_factory, clock)(principal_for(store, ada))

    class TakenOver(FakeMailTransport):
        async def send(self, mail: Mail) -> None:
            # Meanwhile the lease ran out and another relay claimed the message.
            (message,) = store.outbox.values()
            message.claim = "another relay"

    taken = RelayOutbox(
        uow_factory,
        TakenOver(),
        FakeMailTemplates(),
        clock,
        EMAIL,
        RelayPolicy(batch_size=10),
        FakeRateLimits(),
    )
    (delivery,) = (await taken()).deliveries

    assert delivery.outcome is Outcome.LOST
    (message,) = store.outbox.values()
    assert message.status is Status.PENDING
    assert message.claim == "another relay"


def test_links_point_at_the_frontend_with_the_token_as_the_only_parameter() -> None:
    policy = EmailPolicy(frontend_url="https://app.example.com/", verify_path="/v")
    assert policy.link(Purpose.VERIFY_EMAIL, "abc") == "https://app.example.com/v?token=abc"
    assert policy.link(Purpose.PASSWORD_RESET, "abc").endswith("/reset-password?token=abc")


# --- mailed links end with what they were for -----------------------------------------


async def reset_link(
    relay: RelayOutbox, transport: FakeMailTransport, uow_factory: UowFactory,
    clock: FakeClock, address: str,
) -> str:  # fmt: skip
    await RequestPasswordReset(uow_factory, clock)(address)
    return await last_token(relay, transport, "/reset-password")


async def test_a_reset_link_mailed_to_the_old_address_is_refused_after_an_email_change(
    relay: RelayOutbox, transport: FakeMailTransport, uow_factory: UowFactory,
    clock: FakeClock, store: Store, hasher: FakeHasher, failed_logins: FakeFailedLoginCounter,
    ada: User,
) -> None:  # fmt: skip
    token = await reset_link(relay, transport, uow_factory, clock, ada.email)

    await UpdateProfile(uow_factory, hasher, clock, failed_logins)(
        principal_for(store, ada),
        ProfileChanges(email="ada@new.example.com", current_password=PASSWORD),
    )

    with pytest.raises(InvalidResetToken):
        await ResetPassword(uow_factory, hasher, clock)(token, NEW_PASSWORD)
    assert store.users[ada.id].password_hash == f"new${PASSWORD}"  # type: ignore[index]


async def test_a_reset_link_is_refused_after_an_admin_moves_the_address(
    relay: RelayOutbox, transport: FakeMailTransport, uow_factory: UowFactory,
    clock: FakeClock, store: Store, hasher: FakeHasher, ada: User,
) -> None:  # fmt: skip
    token = await reset_link(relay, transport, uow_factory, clock, ada.email)

    await UpdateUser(uow_factory, clock)(ada.id or 0, UserChanges(email="ada@new.example.com"))

    with pytest.raises(InvalidResetToken):
        await ResetPassword(uow_factory, hasher, clock)(token, NEW_PASSWORD)


async def test_a_reset_link_is_refused_for_an_address_the_account_no_longer_has(
    relay: RelayOutbox, transport: FakeMailTransport, uow_factory: UowFactory,
    clock: FakeClock, store: Store, hasher: FakeHasher, ada: User,
) -> None:  # fmt: skip
    # However the address changed (even behind the use cases' back), the token is bound
    # to the one it was sent to.
    token = await reset_link(relay, transport, uow_factory, clock, ada.email)
    store.users[ada.id].email = "ada@elsewhere.example.com"  # type: ignore[index]

    with pytest.raises(InvalidResetToken):
        await ResetPassword(uow_factory, hasher, clock)(token, NEW_PASSWORD)


@pytest.mark.parametrize("ending", ["deactivation and reactivation", "logout-all"])
async def test_links_mailed_before_every_session_ended_are_refused(
    relay: RelayOutbox, transport: FakeMailTransport, uow_factory: UowFactory,
    clock: FakeClock, store: Store, hasher: FakeHasher, ada: User, ending: str,
) -> None:  # fmt: skip
    reset = await reset_link(relay, transport, uow_factory, clock, ada.email)
    await ResendVerification(uow_factory, clock)(principal_for(store, ada))
    verify = await last_token(relay, transport, "/verify-email")

    if ending == "logout-all":
        await LogOutEverywhere(uow_factory, clock)(principal_for(store, ada))
    else:
        await SetActive(uow_factory, clock)(ada.id or 0, active=False)
        await SetActive(uow_factory, clock)(ada.id or 0, active=True)

    with pytest.raises(InvalidResetToken):
        await ResetPassword(uow_factory, hasher, clock)(reset, NEW_PASSWORD)
    with pytest.raises(InvalidVerificationToken):
        await VerifyEmail(uow_factory, clock)(verify)


async def test_a_failed_send_leaves_the_previous_link_working_until_a_new_one_goes_out(
    relay: RelayOutbox, transport: FakeMailTransport, uow_factory: UowFactory,
    clock: FakeClock, store: Store, ada: User,
) -> None:  # fmt: skip
    resend = ResendVerification(uow_factory, clock)
    await resend(principal_for(store, ada))
    first = await last_token(relay, transport, "/verify-email")

    await resend(principal_for(store, ada))
    transport.fail_with = "smtp: 451 try later"
    (failed,) = (await relay()).deliveries
    assert failed.outcome is Outcome.RETRY
    usable = [t for t in store.email_tokens.values() if t.used_at is None]
    assert len(usable) == 2  # the first link, and the unsent one nobody has

    transport.fail_with = None
    clock.advance(hours=2)
    second = await last_token(relay, transport, "/verify-email")
    with pytest.raises(InvalidVerificationToken):
        await VerifyEmail(uow_factory, clock)(first)
    assert (await VerifyEmail(uow_factory, clock)(second)).is_verified


async def test_the_first_link_works_while_its_successor_has_not_been_sent(
    relay: RelayOutbox, transport: FakeMailTransport, uow_factory: UowFactory,
    clock: FakeClock, store: Store, ada: User,
) -> None:  # fmt: skip
    resend = ResendVerification(uow_factory, clock)
    await resend(principal_for(store, ada))
    first = await last_token(relay, transport, "/verify-email")
    await resend(principal_for(store, ada))  # queued, not yet relayed

    assert (await VerifyEmail(uow_factory, clock)(first)).is_verified


# --- a verification link by address -------------------------------------------------


async def test_a_verification_link_by_address_goes_to_an_unconfirmed_active_account_only(
    relay: RelayOutbox, transport: FakeMailTransport, uow_factory: UowFactory,
    clock: FakeClock, store: Store,
) -> None:  # fmt: skip
    seed_user(store, email="new@example.com", username="new")
    seed_user(store, email="done@example.com", username="done", is_verified=True)
    seed_user(store, email="off@example.com", username="off", is_active=False)
    request = RequestVerificationLink(uow_factory, clock)

    for address in ("NEW@example.com", "done@example.com", "off@example.com", "no@example.com"):
        await request(address)

    assert all(m.user_id is None for m in store.outbox.values())
    result = await relay()
    assert [mail.to for mail in transport.sent] == ["new@example.com"]
    assert all(d.by_address for d in result.deliveries)
    token = token_in(transport.sent[0].text, "/verify-email")
    assert (await VerifyEmail(uow_factory, clock)(token)).email == "new@example.com"
    with pytest.raises(InvalidValue):
        await request("not an address")


# --- the mails one address may receive ------------------------------------------------


async def test_an_address_gets_at_most_its_limit_of_mails_and_the_rest_are_capped(
    uow_factory: UowFactory, transport: FakeMailTransport, clock: FakeClock, store: Store,
) -> None:  # fmt: skip
    seed_user(store, email="ada@example.com", username="ada")
    limits = FakeRateLimits({"mail_recipient": 2})
    relay = RelayOutbox(
        uow_factory, transport, FakeMailTemplates(), clock, EMAIL,
        RelayPolicy(batch_size=10), limits,
    )  # fmt: skip
    request = RequestPasswordReset(uow_factory, clock)
    for _ in range(4):
        await request("ada@example.com")

    result = await relay()

    assert [d.outcome for d in result.deliveries].count(Outcome.SENT) == 2
    assert [d.outcome for d in result.deliveries].count(Outcome.CAPPED) == 2
    assert len(transport.sent) == 2
    # Capped messages are settled, not retried, and made no token.
    assert all(m.status is Status.SENT for m in store.outbox.values())
    assert len(store.email_tokens) == 2


async def test_a_mail_waits_for_a_retry_while_the_limit_store_is_away(
    uow_factory: UowFactory, transport: FakeMailTransport, clock: FakeClock, store: Store,
    ada: User,
) -> None:  # fmt: skip
    limits = FakeRateLimits({"mail_recipient": 5})
    relay = RelayOutbox(
        uow_factory, transport, FakeMailTemplates(), clock, EMAIL,
        RelayPolicy(batch_size=10), limits,
    )  # fmt: skip
    await ResendVerification(uow_factory, clock)(principal_for(store, ada))
    limits.unavailable = True

    (delivery,) = (await relay()).deliveries

    assert delivery.outcome is Outcome.RETRY
    assert transport.sent == []
    assert store.email_tokens == {}


# --- an admin may not confirm or take over an address ---------------------------------


async def test_an_admin_cannot_confirm_a_new_address_by_decree(
    uow_factory: UowFactory, clock: FakeClock, store: Store, ada: User
) -> None:
    with pytest.raises(InvalidValue) as caught:
        await UpdateUser(uow_factory, clock)(
            ada.id or 0, UserChanges(email="mallory@example.com", is_verified=True)
        )

    assert caught.value.field == "is_verified"
    assert store.users[ada.id].email == ada.email  # type: ignore[index]
    assert store.outbox == {}


async def test_an_admins_email_change_always_asks_the_new_address_to_confirm(
    uow_factory: UowFactory, clock: FakeClock, store: Store
) -> None:
    ada = seed_user(store, is_verified=True)

    changed = await UpdateUser(uow_factory, clock)(
        ada.id or 0, UserChanges(email="ada@new.example.com")
    )

    assert not changed.is_verified
    assert sorted((m.template, m.recipient) for m in store.outbox.values()) == [
        (Template.EMAIL_CHANGED, ada.email),
        (Template.VERIFY_EMAIL, "ada@new.example.com"),
    ]


async def test_a_superuser_cannot_move_their_own_address_through_the_admin_use_case(
    uow_factory: UowFactory, clock: FakeClock, store: Store
) -> None:
    admin = seed_user(store, is_superuser=True)

    with pytest.raises(CannotChangeOwnAccess):
        await UpdateUser(uow_factory, clock)(
            admin.id or 0, UserChanges(email="mallory@example.com"), acting_user=admin.id
        )
    assert store.users[admin.id].email == admin.email  # type: ignore[index]


async def test_putting_dead_mail_back_in_the_queue_is_audited(
    uow_factory: UowFactory, transport: FakeMailTransport, clock: FakeClock, store: Store,
    relay: RelayOutbox, ada: User,
) -> None:  # fmt: skip
    await ResendVerification(uow_factory, clock)(principal_for(store, ada))
    (message,) = store.outbox.values()
    message.status = Status.DEAD

    with acting_as(Actor(ActorType.OPERATOR, name="ops")):
        assert await RetryOutbox(uow_factory, clock)([message.id]) == 1
        assert await RetryOutbox(uow_factory, clock)(None) == 0  # nothing dead: no event

    (event,) = [e for e in store.audit if e.action is Action.OUTBOX_RETRIED]
    assert event.actor_type is ActorType.OPERATOR
    assert event.details == {"messages": [message.id], "count": 1, "os_user": "ops"}


def test_an_event_keeps_the_clients_request_id_beside_the_servers_own() -> None:
    actor = Actor(ActorType.USER, request_id="ours", client_request_id="theirs")

    event = AuditEvent.of(Action.UPDATED, actor, FakeClock().now(), target_user_id=1)

    assert event.request_id == "ours"
    assert event.details["client_request_id"] == "theirs"
