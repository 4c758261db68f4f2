"""PurgeTokens: expired tokens go, in bounded batches; then sessions with no token left."""

from __future__ import annotations

from datetime import timedelta

import pytest

from application.retention import PurgeResult, PurgeTokens
from domain.model import User
from domain.ports import UowFactory
from tests.fakes import FakeClock, FakeUnitOfWork, Store
from tests.unit.conftest import seed_session, seed_token, snapshot

DAY = timedelta(days=1)


class Stop(Exception):
    pass


@pytest.fixture
def purge(uow_factory: UowFactory, clock: FakeClock) -> PurgeTokens:
    return PurgeTokens(uow_factory, clock)


def seed_expired_session(store: Store, user: User, clock: FakeClock, tokens: int) -> str:
    """A session, 10 days old, whose ``tokens`` refresh tokens expired 3 days ago."""
    start = clock.now() - 10 * DAY
    session = seed_session(store, user.id, start)  # type: ignore[arg-type]
    for _ in range(tokens):
        seed_token(store, session, start)
    return session.id


async def test_purge_deletes_expired_tokens_whatever_their_state_and_keeps_live_ones(
    purge: PurgeTokens, ada: User, store: Store, clock: FakeClock
) -> None:
    now = clock.now()
    old = seed_session(store, ada.id, now - 10 * DAY)  # type: ignore[arg-type]
    expired = [
        seed_token(store, old, now - 10 * DAY),
        seed_token(store, old, now - 10 * DAY, rotated=True),
        seed_token(store, old, now - 10 * DAY, revoked=True),
    ]
    live = seed_session(store, ada.id, now - DAY)  # type: ignore[arg-type]
    kept = [
        seed_token(store, live, now - DAY),
        seed_token(store, live, now - DAY, rotated=True),  # kept: reuse is still detected
        seed_token(store, live, now - DAY, revoked=True),
    ]

    result = await purge()

    assert result == PurgeResult(tokens=3, sessions=1, batches=2, dry_run=False)
    assert set(store.tokens) == {t.id for t in kept}
    assert not set(store.tokens) & {t.id for t in expired}
    assert set(store.sessions) == {live.id}


async def test_purge_keeps_an_expired_session_while_it_still_has_a_token(
    purge: PurgeTokens, ada: User, store: Store, clock: FakeClock
) -> None:
    # Not possible through the use cases (a session lives as long as its newest
    # token), but the purge must never leave a token without its session.
    now = clock.now()
    session = seed_session(store, ada.id, now - 10 * DAY)  # type: ignore[arg-type]
    seed_token(store, session, now - DAY)

    result = await purge()

    assert result.sessions == 0
    assert session.id in store.sessions


async def test_purge_with_nothing_to_do_reports_zero(
    purge: PurgeTokens, ada: User, store: Store, clock: FakeClock
) -> None:
    seed_token(store, seed_session(store, ada.id, clock.now()), clock.now())  # type: ignore[arg-type]
    before = snapshot(store)

    result = await purge()

    assert result == PurgeResult(tokens=0, sessions=0, batches=0, dry_run=False)
    assert snapshot(store) == before


@pytest.mark.parametrize(
    ("expired_tokens", "token_batches", "commits"),
    [(5, 3, 3 + 1), (4, 2, 3 + 1), (1, 1, 1 + 1)],
)
async def test_purge_deletes_in_batches_each_in_its_own_transaction(
    uow_factory: UowFactory,
    ada: User,
    store: Store,
    uow: FakeUnitOfWork,
    clock: FakeClock,
    expired_tokens: int,
    token_batches: int,
    commits: int,
) -> None:
    seed_expired_session(store, ada, clock, tokens=expired_tokens)
    progress: list[int] = []

    result = await PurgeTokens(uow_factory, clock, batch_size=2)(on_progress=progress.append)

    assert result == PurgeResult(
        tokens=expired_tokens, sessions=1, batches=token_batches + 1, dry_run=False
    )
    assert sum(progress) == expired_tokens + 1
    assert max(progress) <= 2
    assert uow.commits == commits
    assert store.tokens == {}
    assert store.sessions == {}


async def test_a_stopped_purge_keeps_the_batches_already_done(
    uow_factory: UowFactory, ada: User, store: Store, clock: FakeClock
) -> None:
    seed_expired_session(store, ada, clock, tokens=5)

    def stop(_: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        await PurgeTokens(uow_factory, clock, batch_size=2)(on_progress=stop)

    assert len(store.tokens) == 3


async def test_a_dry_run_counts_everything_and_deletes_nothing(
    uow_factory: UowFactory, ada: User, store: Store, uow: FakeUnitOfWork, clock: FakeClock
) -> None:
    seed_expired_session(store, ada, clock, tokens=5)
    seed_expired_session(store, ada, clock, tokens=1)
    seed_token(store, seed_session(store, ada.id, clock.now()), clock.now())  # type: ignore[arg-type]
    before = snapshot(store)

    result = await PurgeTokens(uow_factory, clock, batch_size=2)(dry_run=True)

    assert result == PurgeResult(tokens=6, sessions=2, batches=0, dry_run=True)
    assert snapshot(store) == before
    assert uow.commits == 0


@pytest.mark.parametrize("batch_size", [0, -1])
def test_batch_size_must_be_positive(
    uow_factory: UowFactory, clock: FakeClock, batch_size: int
) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        PurgeTokens(uow_factory, clock, batch_size=batch_size)


class Rests:
    """A clock where every batch takes ``batch_seconds``, and the rests it is given."""

    def __init__(self, batch_seconds: float) -> None:
        self.batch_seconds = batch_seconds
        self.now = 0.0
        self.rests: list[float] = []

    def monotonic(self) -> float:
        # Read at each batch's start and end only: every read is a batch later.
        self.now += self.batch_seconds
        return self.now

    async def pause(self, seconds: float) -> None:
        self.rests.append(seconds)


def resting_purge(
    uow_factory: UowFactory, clock: FakeClock, rests: Rests, factor: float
) -> PurgeTokens:
    return PurgeTokens(
        uow_factory,
        clock,
        batch_size=2,
        purge_pause_factor=factor,
        pause=rests.pause,
        monotonic=rests.monotonic,
    )


async def test_the_purge_rests_after_each_full_batch_in_proportion_to_its_duration(
    uow_factory: UowFactory, ada: User, store: Store, clock: FakeClock
) -> None:
    # 5 tokens in batches of 2, 2 and 1; then 4 sessions in 2, 2 and an empty one.
    for _ in range(3):
        seed_expired_session(store, ada, clock, tokens=1)
    seed_expired_session(store, ada, clock, tokens=2)
    rests = Rests(batch_seconds=0.25)

    result = await resting_purge(uow_factory, clock, rests, factor=3)()

    assert (result.tokens, result.sessions) == (5, 4)
    # After each full batch (two of tokens, two of sessions), never after the last.
    assert rests.rests == [0.75, 0.75, 0.75, 0.75]
    assert store.tokens == {}
    assert store.sessions == {}


async def test_a_run_may_override_the_rest_and_zero_means_none(
    uow_factory: UowFactory, ada: User, store: Store, clock: FakeClock
) -> None:
    seed_expired_session(store, ada, clock, tokens=5)
    rests = Rests(batch_seconds=0.1)

    result = await resting_purge(uow_factory, clock, rests, factor=3)(pause_factor=0)

    assert result.tokens == 5
    assert rests.rests == []


async def test_a_dry_run_never_rests(
    uow_factory: UowFactory, ada: User, store: Store, clock: FakeClock
) -> None:
    seed_expired_session(store, ada, clock, tokens=5)
    rests = Rests(batch_seconds=0.1)

    await resting_purge(uow_factory, clock, rests, factor=3)(dry_run=True)

    assert rests.rests == []


async def test_a_negative_rest_is_refused(uow_factory: UowFactory, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        PurgeTokens(uow_factory, clock, purge_pause_factor=-1)
    with pytest.raises(ValueError, match="must not be negative"):
        await PurgeTokens(uow_factory, clock)(pause_factor=-0.5)
