"""Signing keys: the rules of rotation, and the use cases over in-memory fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from application.signing_keys import (
    EnsureSigningKey,
    KeyLifecycleResult,
    ListSigningKeys,
    PublishedSigningKeys,
    RevokeSigningKey,
    RotateSigningKeys,
    RunKeyLifecycle,
)
from domain.audit import Actor, ActorType, acting_as
from domain.signing_keys import (
    RELOAD_MARGIN,
    KeyPolicy,
    KeyState,
    SigningKeyNotFound,
    SigningKeysUnavailable,
    SigningKeyUnreadable,
    activation_time,
    published,
    retirements,
    signers,
    signing_key,
    state_of,
)
from tests.fakes import FakeClock, FakeSigningKeyRepository, FakeUnitOfWork
from tests.fakes_keys import (
    DELAY,
    ES256,
    HS256,
    LIFETIME,
    NOW,
    FakeKeyMaker,
    FakeKeySet,
    make_key,
)

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
# An audit event as the tests compare it: action, actor type, target user, details. (A
# module-level alias: inside ``World`` the name ``list`` is its method.)
Events = list[tuple[str, str, int | None, dict[str, object]]]
Kids = list[str]


# --- the rules -------------------------------------------------------------------------


def test_the_newest_activated_unretired_key_of_the_algorithm_signs() -> None:
    old = make_key("old", activates_at=NOW - 2 * HOUR)
    current = make_key("current", activates_at=NOW - HOUR)
    pending = make_key("pending", activates_at=NOW + HOUR)
    other = make_key("other", activates_at=NOW - MINUTE, algorithm="EdDSA")
    keys = [pending, old, other, current]

    assert signing_key(keys, "ES256", NOW) == current
    assert signing_key(keys, "ES256", NOW + HOUR) == pending
    assert signing_key(keys, "EdDSA", NOW) == other
    assert signing_key(keys, "ES256", NOW - 3 * HOUR) is None


def test_a_retired_key_never_signs_again() -> None:
    retired = make_key("retired", activates_at=NOW - HOUR, retired_at=NOW - MINUTE)

    assert signing_key([retired], "ES256", NOW) is None
    assert signing_key([retired], "ES256", NOW - 2 * MINUTE) == retired


def test_keys_are_published_until_their_last_token_has_expired() -> None:
    live = make_key("live", activates_at=NOW - HOUR, retired_at=NOW, delete_after=NOW + MINUTE)
    gone = make_key("gone", activates_at=NOW - 2 * HOUR, retired_at=NOW, delete_after=NOW)
    pending = make_key("pending", activates_at=NOW + HOUR)
    other = make_key("other", algorithm="EdDSA")

    assert published([pending, gone, live, other], "ES256", NOW) == [live, pending]


def test_states_of_pending_active_and_superseded_keys() -> None:
    keys = [
        make_key("superseded", activates_at=NOW - 2 * HOUR),
        make_key("active", activates_at=NOW - HOUR),
        make_key("pending", activates_at=NOW + HOUR),
        make_key("retired", activates_at=NOW - 3 * HOUR, retired_at=NOW - 2 * HOUR),
    ]

    states = {key.kid: state_of(key, keys, NOW) for key in keys}

    assert states == {
        "superseded": KeyState.RETIRED,
        "active": KeyState.ACTIVE,
        "pending": KeyState.PENDING,
        "retired": KeyState.RETIRED,
    }


def test_a_key_of_another_algorithm_has_its_state_among_the_keys_of_its_algorithm() -> None:
    # What another process, configured with that algorithm, does with it.
    keys = [
        make_key("es", activates_at=NOW - MINUTE),
        make_key("ed-old", activates_at=NOW - 2 * HOUR, algorithm="EdDSA"),
        make_key("ed", activates_at=NOW - HOUR, algorithm="EdDSA"),
        make_key("ed-next", activates_at=NOW + HOUR, algorithm="EdDSA"),
    ]

    states = {key.kid: state_of(key, keys, NOW) for key in keys}

    assert states == {
        "es": KeyState.ACTIVE,
        "ed-old": KeyState.RETIRED,
        "ed": KeyState.ACTIVE,
        "ed-next": KeyState.PENDING,
    }


def test_a_new_key_waits_for_the_delay_unless_no_key_signs() -> None:
    signing = make_key("signing", activates_at=NOW - HOUR)

    assert activation_time([signing], "ES256", NOW, DELAY) == NOW + DELAY
    assert activation_time([], "ES256", NOW, DELAY) == NOW
    assert activation_time([signing], "EdDSA", NOW, DELAY) == NOW


def test_each_superseded_key_retires_when_its_successor_took_over() -> None:
    first = make_key("first", activates_at=NOW - 3 * HOUR)
    second = make_key("second", activates_at=NOW - 2 * HOUR)
    third = make_key("third", activates_at=NOW - HOUR)
    pending = make_key("pending", activates_at=NOW + HOUR)
    done = make_key("done", activates_at=NOW - 9 * HOUR, retired_at=NOW - 3 * HOUR)

    due = retirements([pending, third, first, done, second], "ES256", NOW, LIFETIME)

    assert {(r.kid, r.at, r.delete_after) for r in due} == {
        ("first", second.activates_at, second.activates_at + LIFETIME + RELOAD_MARGIN),
        ("second", third.activates_at, third.activates_at + LIFETIME + RELOAD_MARGIN),
    }


def test_nothing_retires_before_the_successor_signs() -> None:
    keys = [
        make_key("current", activates_at=NOW - HOUR),
        make_key("next", activates_at=NOW + timedelta(seconds=1)),
    ]

    assert retirements(keys, "ES256", NOW, LIFETIME) == []
    assert retirements([], "ES256", NOW, LIFETIME) == []


@pytest.mark.parametrize(("mine", "other"), [("ES256", "EdDSA"), ("EdDSA", "ES256")])
def test_keys_of_another_algorithm_are_never_retired(mine: str, other: str) -> None:
    # A job runner configured with ``mine`` next to an API still signing with ``other``
    # (older or newer keys alike): the API keeps its signer.
    keys = [
        make_key("older", activates_at=NOW - 2 * HOUR, algorithm=other),
        make_key("mine", activates_at=NOW - HOUR, algorithm=mine),
        make_key("newer", activates_at=NOW - MINUTE, algorithm=other),
    ]

    assert retirements(keys, mine, NOW, LIFETIME) == []
    [due] = retirements(keys, other, NOW, LIFETIME)
    assert (due.kid, due.at) == ("older", NOW - MINUTE)  # superseded by its own kind


def test_the_keys_that_sign_or_will_are_the_signer_and_the_pending_ones() -> None:
    keys = [
        make_key("old", activates_at=NOW - 2 * HOUR),
        make_key("current", activates_at=NOW - HOUR),
        make_key("next", activates_at=NOW + HOUR),
        make_key("other", activates_at=NOW + HOUR, algorithm="EdDSA"),
    ]

    assert [key.kid for key in signers(keys, "ES256", NOW)] == ["current", "next"]
    assert [key.kid for key in signers([], "ES256", NOW)] == []


def test_the_public_jwk_names_its_kid_algorithm_and_use_and_no_private_part() -> None:
    jwk = make_key("k1").jwk()

    assert jwk == {
        "kty": "EC",
        "crv": "P-256",
        "x": "x",
        "y": "y",
        "kid": "k1",
        "alg": "ES256",
        "use": "sig",
    }
    assert "sealed" not in repr(make_key("k1"))


# --- the use cases ---------------------------------------------------------------------


class World:
    """The fakes a signing-key use case runs on."""

    def __init__(self, policy: KeyPolicy = ES256) -> None:
        self.uow = FakeUnitOfWork()
        self.clock = FakeClock(NOW)
        self.maker = FakeKeyMaker()
        self.key_set = FakeKeySet()
        self.policy = policy

    @property
    def repo(self) -> FakeSigningKeyRepository:
        """The committed keys, as the next unit of work will find them."""
        return FakeSigningKeyRepository(self.uow.store)

    def ensure(self) -> EnsureSigningKey:
        uow = self.uow
        return EnsureSigningKey(
            lambda: uow, lambda: uow, self.maker, self.clock, self.policy, self.key_set
        )

    def rotate(self) -> RotateSigningKeys:
        return RotateSigningKeys(lambda: self.uow, self.maker, self.clock, self.policy)

    def list(self) -> ListSigningKeys:
        return ListSigningKeys(lambda: self.uow, self.clock, self.policy)

    def published(self) -> PublishedSigningKeys:
        return PublishedSigningKeys(lambda: self.uow, self.clock, self.policy)

    def lifecycle(self) -> RunKeyLifecycle:
        return RunKeyLifecycle(lambda: self.uow, self.clock, self.policy)

    def revoke(self) -> RevokeSigningKey:
        return RevokeSigningKey(lambda: self.uow, self.maker, self.clock, self.policy)

    async def kids(self) -> Kids:
        return [key.kid for key in await self.repo.list_all()]

    def events(self) -> Events:
        """The committed audit events."""
        return [
            (e.action.value, e.actor_type.value, e.target_user_id, e.details)
            for e in self.uow.store.audit
        ]


@pytest.fixture
def world() -> World:
    return World()


async def test_the_first_start_creates_one_active_key_and_loads_it(world: World) -> None:
    await world.ensure()()

    [key] = await world.repo.list_all()
    assert (key.kid, key.algorithm, key.activates_at) == ("kid-1", "ES256", NOW)
    assert world.repo.first_of == {"ES256": "kid-1"}
    assert world.uow.committed
    assert world.key_set.reloads == 1


async def test_a_later_start_creates_nothing_and_reloads(world: World) -> None:
    await world.ensure()()
    world.clock.advance(days=30)

    await world.ensure()()

    assert [key.kid for key in await world.repo.list_all()] == ["kid-1"]
    assert world.maker.made == ["kid-1"]
    assert world.key_set.reloads == 2


async def test_a_start_that_loses_the_first_key_race_stores_nothing_and_loads_the_winner(
    world: World,
) -> None:
    # Another process stored its first key between this one's read and its write.
    world.repo.first_of["ES256"] = "the-winner"

    await world.ensure()()

    assert await world.repo.list_all() == []
    assert world.uow.commits == 0
    assert world.key_set.reloads == 1


async def test_a_start_after_a_switch_of_algorithm_creates_a_key_of_the_new_one() -> None:
    world = World(KeyPolicy(algorithm="EdDSA", token_lifetime=LIFETIME))
    await world.repo.add(make_key("es", activates_at=NOW - HOUR))

    await world.ensure()()

    assert [(k.kid, k.algorithm) for k in await world.repo.list_all()] == [
        ("es", "ES256"),
        ("kid-1", "EdDSA"),
    ]


async def test_with_hmac_the_start_touches_nothing() -> None:
    world = World(HS256)

    await world.ensure()()

    assert world.uow.entered == 0
    assert world.key_set.reloads == 0
    assert await world.published()() == []
    assert await world.lifecycle()() == KeyLifecycleResult(retired=0, deleted=0)


@pytest.mark.parametrize("use_case", ["rotate", "list"])
async def test_with_hmac_keys_cannot_be_rotated_or_listed(use_case: str) -> None:
    world = World(HS256)

    with pytest.raises(SigningKeysUnavailable, match="ES256 or EdDSA"):
        await getattr(world, use_case)()()
    assert world.uow.entered == 0


async def test_a_rotation_publishes_at_once_and_signs_after_the_delay(world: World) -> None:
    await world.ensure()()
    world.clock.advance(hours=1)

    new = await world.rotate()()

    assert new.activates_at == world.clock.now() + DELAY
    assert [k.kid for k in await world.published()()] == ["kid-1", new.kid]
    states = [(item.key.kid, item.state) for item in await world.list()()]
    assert states == [("kid-1", KeyState.ACTIVE), (new.kid, KeyState.PENDING)]
    world.clock.advance(seconds=DELAY.total_seconds())
    states = [(item.key.kid, item.state) for item in await world.list()()]
    assert states == [("kid-1", KeyState.RETIRED), (new.kid, KeyState.ACTIVE)]


async def test_a_rotation_with_no_signing_key_signs_at_once(world: World) -> None:
    new = await world.rotate()()

    assert new.activates_at == NOW


async def test_the_lifecycle_retires_the_superseded_key_then_deletes_it_after_its_tokens(
    world: World,
) -> None:
    await world.ensure()()
    new = await world.rotate()()

    assert await world.lifecycle()() == KeyLifecycleResult(retired=0, deleted=0)
    world.clock.advance(seconds=DELAY.total_seconds())
    first = await world.lifecycle()()

    assert (first.retired, first.deleted) == (1, 0)
    [old, _] = await world.repo.list_all()
    assert old.retired_at == new.activates_at
    assert old.delete_after == new.activates_at + LIFETIME + RELOAD_MARGIN
    assert world.repo.first_of == {}  # a later switch back may create a first key again
    assert [k.kid for k in await world.published()()] == ["kid-1", new.kid]

    world.clock.current = old.delete_after - timedelta(seconds=1)
    assert (await world.lifecycle()()).deleted == 0
    world.clock.current = old.delete_after
    last = await world.lifecycle()()

    assert (last.retired, last.deleted) == (0, 1)
    assert [k.kid for k in await world.repo.list_all()] == [new.kid]
    assert [k.kid for k in await world.published()()] == [new.kid]


async def test_a_rotation_is_audited_with_its_kid_and_algorithm(world: World) -> None:
    await world.ensure()()

    with acting_as(Actor(ActorType.OPERATOR, name="ops")):
        new = await world.rotate()()

    assert world.events() == [
        (
            "key.rotated",
            "operator",
            None,
            {
                "kid": new.kid,
                "algorithm": "ES256",
                "activates_at": new.activates_at.isoformat(),
                "os_user": "ops",
            },
        )
    ]


async def test_a_rotation_whose_secret_key_cannot_open_the_current_key_stores_nothing(
    world: World,
) -> None:
    await world.ensure()()
    world.maker.unreadable = frozenset({"kid-1"})  # another deployment's SECRET_KEY

    with pytest.raises(SigningKeyUnreadable) as refused:
        await world.rotate()()

    assert refused.value.kid == "kid-1"
    assert await world.kids() == ["kid-1"]
    assert (world.uow.commits, world.events()) == (1, [])  # the first start's commit only


async def test_a_rotation_also_proves_it_opens_the_pending_keys(world: World) -> None:
    await world.ensure()()
    await world.rotate()()
    world.maker.unreadable = frozenset({"kid-2"})

    with pytest.raises(SigningKeyUnreadable):
        await world.rotate()()

    assert await world.kids() == ["kid-1", "kid-2"]


async def test_a_rotation_whose_new_sealed_key_does_not_open_stores_nothing(
    world: World,
) -> None:
    await world.ensure()()
    world.maker.unreadable = frozenset({"kid-2"})  # the key the rotation makes

    with pytest.raises(SigningKeyUnreadable):
        await world.rotate()()

    assert await world.kids() == ["kid-1"]
    assert world.events() == []


async def test_each_retirement_by_the_lifecycle_is_audited_once(world: World) -> None:
    await world.ensure()()
    new = await world.rotate()()
    world.clock.advance(seconds=DELAY.total_seconds())

    await world.lifecycle()()
    await world.lifecycle()()

    [old, _] = await world.repo.list_all()
    assert world.events()[1:] == [
        (
            "key.retired",
            "system",
            None,
            {
                "kid": "kid-1",
                "algorithm": "ES256",
                "delete_after": (new.activates_at + LIFETIME + RELOAD_MARGIN).isoformat(),
            },
        )
    ]
    assert old.retired_at == new.activates_at


@pytest.mark.parametrize(("api", "runner"), [("ES256", "EdDSA"), ("EdDSA", "ES256")])
async def test_a_lifecycle_of_another_algorithm_leaves_the_keys_of_the_api_alone(
    api: str, runner: str
) -> None:
    world = World(KeyPolicy(algorithm=runner, token_lifetime=LIFETIME))
    await world.repo.add(make_key("api", activates_at=NOW - HOUR, algorithm=api))
    await world.ensure()()  # the job runner's start makes a key of its own algorithm

    for days in (0, 30):
        world.clock.current = NOW + timedelta(days=days)
        assert await world.lifecycle()() == KeyLifecycleResult(retired=0, deleted=0)

    [key, _] = await world.repo.list_all()
    assert (key.kid, key.retired_at, key.delete_after) == ("api", None, None)
    assert signing_key(await world.repo.list_all(), api, world.clock.now()) == key


async def test_the_lifecycle_deletes_expired_retired_keys_of_any_algorithm(world: World) -> None:
    await world.repo.add(
        make_key(
            "ed",
            algorithm="EdDSA",
            activates_at=NOW - 9 * HOUR,
            retired_at=NOW - 8 * HOUR,
            delete_after=NOW - HOUR,
        )
    )

    assert (await world.lifecycle()()).deleted == 1
    assert await world.kids() == []


# --- revocation ------------------------------------------------------------------------


async def test_revoking_the_signing_key_makes_a_new_one_that_signs_at_once(world: World) -> None:
    await world.ensure()()
    world.clock.advance(hours=1)

    with acting_as(Actor(ActorType.OPERATOR, name="ops")):
        done = await world.revoke()("kid-1")

    assert done.revoked.kid == "kid-1"
    assert done.successor is not None
    assert (done.successor.kid, done.successor.activates_at) == ("kid-2", world.clock.now())
    assert await world.kids() == ["kid-2"]
    assert [k.kid for k in await world.published()()] == ["kid-2"]
    [item] = await world.list()()
    assert item.state is KeyState.ACTIVE
    assert world.events() == [
        (
            "key.revoked",
            "operator",
            None,
            {"kid": "kid-1", "algorithm": "ES256", "replaced_by": "kid-2", "os_user": "ops"},
        ),
        (
            "key.rotated",
            "operator",
            None,
            {
                "kid": "kid-2",
                "algorithm": "ES256",
                "activates_at": world.clock.now().isoformat(),
                "os_user": "ops",
            },
        ),
    ]
    assert world.uow.commits == 2  # the first start, then the revocation in one


async def test_revoking_the_signing_key_while_another_is_pending_still_signs_at_once(
    world: World,
) -> None:
    await world.ensure()()
    pending = await world.rotate()()

    done = await world.revoke()("kid-1")

    assert done.successor is not None
    keys = await world.repo.list_all()
    assert signing_key(keys, "ES256", world.clock.now()) == done.successor
    assert signing_key(keys, "ES256", pending.activates_at) == pending


@pytest.mark.parametrize("state", ["pending", "retired"])
async def test_revoking_a_key_that_does_not_sign_deletes_it_and_makes_none(
    world: World, state: str
) -> None:
    await world.ensure()()
    await world.rotate()()
    if state == "retired":
        world.clock.advance(seconds=DELAY.total_seconds())
        await world.lifecycle()()
    doomed = "kid-2" if state == "pending" else "kid-1"
    kept = "kid-1" if state == "pending" else "kid-2"

    done = await world.revoke()(doomed)

    assert (done.revoked.kid, done.successor) == (doomed, None)
    assert await world.kids() == [kept]
    assert [k.kid for k in await world.published()()] == [kept]
    assert world.maker.made == ["kid-1", "kid-2"]
    assert world.events()[-1] == (
        "key.revoked",
        "system",
        None,
        {"kid": doomed, "algorithm": "ES256"},
    )


async def test_revoking_the_signer_of_another_algorithm_replaces_it_with_its_own_kind(
    world: World,
) -> None:
    # The process that signs with it goes on signing, whatever this one is configured for.
    await world.ensure()()
    await world.repo.add(make_key("ed", algorithm="EdDSA", activates_at=NOW - HOUR))

    done = await world.revoke()("ed")

    assert done.successor is not None
    assert done.successor.algorithm == "EdDSA"
    keys = await world.repo.list_all()
    assert signing_key(keys, "EdDSA", NOW) == done.successor
    assert signing_key(keys, "ES256", NOW) is not None


async def test_revoking_an_unknown_kid_changes_nothing(world: World) -> None:
    await world.ensure()()

    with pytest.raises(SigningKeyNotFound, match="app keys list"):
        await world.revoke()("no-such-kid")

    assert await world.kids() == ["kid-1"]
    assert (world.uow.commits, world.events()) == (1, [])


async def test_revoking_the_signer_with_a_secret_key_that_cannot_open_it_changes_nothing(
    world: World,
) -> None:
    await world.ensure()()
    world.maker.unreadable = frozenset({"kid-1"})

    with pytest.raises(SigningKeyUnreadable):
        await world.revoke()("kid-1")

    assert await world.kids() == ["kid-1"]
    assert world.events() == []


async def test_revoking_the_signer_when_its_successor_does_not_open_changes_nothing(
    world: World,
) -> None:
    await world.ensure()()
    world.maker.unreadable = frozenset({"kid-2"})

    with pytest.raises(SigningKeyUnreadable):
        await world.revoke()("kid-1")

    assert await world.kids() == ["kid-1"]


async def test_with_hmac_keys_cannot_be_revoked() -> None:
    world = World(HS256)

    with pytest.raises(SigningKeysUnavailable):
        await world.revoke()("kid-1")
    assert world.uow.entered == 0
