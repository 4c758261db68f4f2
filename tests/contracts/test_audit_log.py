"""The AuditLog contract (AuditLog, domain/audit.py): an event is kept with every field
if and only if its unit of work commits, each gets an id of its own, and the trail is
read newest first, filtered and paged, and purged of old events a batch at a time; on
the fake and on the SQL adapter alike.

What the use cases record, and how the admin API and the CLI show it, is tested end to
end (tests/e2e).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from domain.audit import Action, ActorType, AuditEvent, AuditFilter, AuditLog
from domain.model import PageRequest
from domain.ports import UserRepository
from tests.contracts.builders import DAY, NOW, UowFactory, make_user

MINUTE = timedelta(minutes=1)


def event(
    action: Action = Action.UPDATED,
    *,
    at: datetime = NOW,
    actor_type: ActorType = ActorType.SYSTEM,
    actor_id: int | None = None,
    target_user_id: int | None = None,
    request_id: str | None = None,
    ip: str | None = None,
    details: dict[str, object] | None = None,
) -> AuditEvent:
    return AuditEvent(
        action=action,
        occurred_at=at,
        actor_type=actor_type,
        actor_id=actor_id,
        target_user_id=target_user_id,
        request_id=request_id,
        ip=ip,
        details=details or {},
    )


async def add(new_uow: UowFactory, *events: AuditEvent) -> None:
    """The events, in this order, in one committed unit of work."""
    async with new_uow() as uow:
        for recorded in events:
            await uow.repository(AuditLog).add(recorded)
        await uow.commit()


async def page(
    new_uow: UowFactory, where: AuditFilter | None = None, number: int = 1, size: int = 100
) -> tuple[list[AuditEvent], int]:
    async with new_uow() as uow:
        return await uow.repository(AuditLog).page(
            where or AuditFilter(), PageRequest(page=number, size=size)
        )


async def listed(new_uow: UowFactory, where: AuditFilter | None = None) -> list[AuditEvent]:
    """Every matching event, newest first."""
    events, total = await page(new_uow, where)
    assert len(events) == total
    return events


def actions(events: list[AuditEvent]) -> list[Action]:
    return [e.action for e in events]


async def test_an_added_event_reads_back_with_every_field_and_an_id(new_uow: UowFactory) -> None:
    recorded = event(
        Action.EMAIL_CHANGED,
        actor_type=ActorType.USER,
        actor_id=7,
        target_user_id=42,
        request_id="req-1",
        ip="2001:db8::1",
        details={
            "fields": ["email", "full_name"],
            "count": 3,
            "verified": False,
            "previous": None,
            "os_user": "zoë",
            "nested": {"quote": "<\"'&>"},
        },
    )
    await add(new_uow, recorded)

    [stored] = await listed(new_uow)

    assert isinstance(stored.id, int)
    assert vars(stored) == {**vars(recorded), "id": stored.id}
    assert stored.action is Action.EMAIL_CHANGED
    assert stored.actor_type is ActorType.USER
    # The id is the stored event's: the caller's is left as it was.
    assert recorded.id is None


async def test_an_event_is_kept_if_and_only_if_its_unit_of_work_commits(
    new_uow: UowFactory,
) -> None:
    async with new_uow() as uow:
        user = await uow.repository(UserRepository).add(make_user("ada"))
        await uow.repository(AuditLog).add(event(Action.REGISTERED, target_user_id=user.id))
        # No commit: neither the change nor its event is kept.
    async with new_uow() as uow:
        await uow.repository(AuditLog).add(event(Action.UPDATED))
        await uow.rollback()
    assert await page(new_uow) == ([], 0)
    async with new_uow() as uow:
        assert await uow.repository(UserRepository).get_by_login("ada") is None

    async with new_uow() as uow:
        user = await uow.repository(UserRepository).add(make_user("ada"))
        await uow.repository(AuditLog).add(event(Action.REGISTERED, target_user_id=user.id))
        await uow.commit()

    [kept] = await listed(new_uow)
    assert (kept.action, kept.target_user_id) == (Action.REGISTERED, user.id)
    async with new_uow() as uow:
        assert await uow.repository(UserRepository).get_by_login("ada") is not None


async def test_events_are_listed_newest_first_a_page_at_a_time_with_the_total(
    new_uow: UowFactory,
) -> None:
    in_order = [
        Action.REGISTERED,
        Action.EMAIL_VERIFIED,
        Action.UPDATED,
        Action.PASSWORD_CHANGED,
        Action.DEACTIVATED,
    ]
    # One at a time, as changes commit.
    for n, action in enumerate(in_order):
        await add(new_uow, event(action, at=NOW + n * MINUTE))

    first, first_total = await page(new_uow, number=1, size=2)
    second, second_total = await page(new_uow, number=2, size=2)
    last, last_total = await page(new_uow, number=3, size=2)
    past, past_total = await page(new_uow, number=4, size=2)

    assert actions(first) == [Action.DEACTIVATED, Action.PASSWORD_CHANGED]
    assert actions(second) == [Action.UPDATED, Action.EMAIL_VERIFIED]
    assert actions(last) == [Action.REGISTERED]
    assert past == []
    assert first_total == second_total == last_total == past_total == 5


async def test_events_are_filtered_by_action_actor_and_target_alone_or_together(
    new_uow: UowFactory,
) -> None:
    user = ActorType.USER
    await add(
        new_uow,
        event(Action.REGISTERED, actor_type=user, target_user_id=1),
        event(Action.UPDATED, actor_type=user, actor_id=1, target_user_id=1),
        event(Action.UPDATED, actor_type=user, actor_id=9, target_user_id=1),
        event(Action.UPDATED, actor_type=user, actor_id=9, target_user_id=2),
        event(Action.DELETED, actor_type=ActorType.OPERATOR, target_user_id=2),
        event(Action.KEY_ROTATED),
    )

    def seen(events: list[AuditEvent]) -> list[tuple[str, int | None, int | None]]:
        return [(e.action.value, e.actor_id, e.target_user_id) for e in events]

    by_target = await listed(new_uow, AuditFilter(target_user_id=1))
    by_actor = await listed(new_uow, AuditFilter(actor_id=9))
    # The action as the API and the CLI pass it: a plain string.
    by_action = await listed(new_uow, AuditFilter(action="user.updated"))
    together = AuditFilter(action="user.updated", actor_id=9, target_user_id=2)
    nothing = AuditFilter(action="user.updated", target_user_id=3)

    assert seen(by_target) == [
        ("user.updated", 9, 1),
        ("user.updated", 1, 1),
        ("user.registered", None, 1),
    ]
    assert seen(by_actor) == [("user.updated", 9, 2), ("user.updated", 9, 1)]
    assert seen(by_action) == [
        ("user.updated", 9, 2),
        ("user.updated", 9, 1),
        ("user.updated", 1, 1),
    ]
    assert seen(await listed(new_uow, together)) == [("user.updated", 9, 2)]
    assert await page(new_uow, nothing) == ([], 0)
    # A page of a filtered list counts every match, not only the page's.
    newest, total = await page(new_uow, AuditFilter(target_user_id=1), size=1)
    assert (seen(newest), total) == ([("user.updated", 9, 1)], 3)


async def test_delete_before_deletes_up_to_the_limit_only_events_older_than_the_cutoff(
    new_uow: UowFactory,
) -> None:
    old = [event(Action.UPDATED, at=NOW - DAY + n * MINUTE) for n in range(3)]
    at_cutoff = event(Action.DEACTIVATED, at=NOW)
    recent = event(Action.ACTIVATED, at=NOW + MINUTE)
    await add(new_uow, *old, at_cutoff, recent)

    async with new_uow() as uow:
        log = uow.repository(AuditLog)
        deleted = [await log.delete_before(NOW, 2) for _ in range(3)]
        await uow.commit()

    assert deleted == [2, 1, 0]
    assert actions(await listed(new_uow)) == [Action.ACTIVATED, Action.DEACTIVATED]


async def test_every_event_gets_an_id_of_its_own_never_one_a_deleted_event_had(
    new_uow: UowFactory,
) -> None:
    await add(new_uow, *(event(at=NOW - DAY) for _ in range(3)))
    deleted_ids = {e.id for e in await listed(new_uow)}
    async with new_uow() as uow:
        assert await uow.repository(AuditLog).delete_before(NOW, 100) == 3
        await uow.commit()

    await add(new_uow, event(Action.ACTIVATED), event(Action.DEACTIVATED))

    ids = [e.id for e in await listed(new_uow)]
    assert len(set(ids)) == 2
    assert not deleted_ids & set(ids)
    assert len(deleted_ids) == 3
