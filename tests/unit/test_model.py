"""Entities and value objects: paging, sessions, users, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidValue, RateLimited
from domain.model import MAX_PAGE_SIZE, Page, PageRequest, Principal, Session, new_id
from tests.fakes import RELAXED, make_user

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def test_page_request_defaults_to_the_first_page_of_20() -> None:
    request = PageRequest()
    assert (request.page, request.size, request.offset) == (1, 20, 0)


@pytest.mark.parametrize(("page", "size"), [(1, 1), (1, MAX_PAGE_SIZE), (10**6, 50)])
def test_page_request_accepts_page_from_1_and_size_from_1_to_100(page: int, size: int) -> None:
    assert PageRequest(page, size).size == size


@pytest.mark.parametrize("page", [0, -1, -(10**9)])
def test_page_request_refuses_a_page_below_1(page: int) -> None:
    with pytest.raises(InvalidValue) as caught:
        PageRequest(page=page)
    assert caught.value.field == "page"


@pytest.mark.parametrize("size", [0, -5, MAX_PAGE_SIZE + 1, 10**6])
def test_page_request_refuses_a_size_outside_1_to_100(size: int) -> None:
    with pytest.raises(InvalidValue) as caught:
        PageRequest(size=size)
    assert caught.value.field == "size"


@RELAXED
@given(st.integers(1, 10**9), st.integers(1, MAX_PAGE_SIZE))
def test_page_offset_skips_the_earlier_pages(page: int, size: int) -> None:
    assert PageRequest(page, size).offset == (page - 1) * size


@RELAXED
@given(total=st.integers(0, 10**30), size=st.integers(1, MAX_PAGE_SIZE))
def test_pages_is_the_fewest_pages_that_hold_every_item(total: int, size: int) -> None:
    pages = Page(items=[], total=total, page=1, size=size).pages
    assert pages >= 0
    assert pages * size >= total
    if total > 0:
        assert (pages - 1) * size < total
    else:
        assert pages == 0


@RELAXED
@given(total=st.integers(1, 10**6), size=st.integers(1, MAX_PAGE_SIZE))
def test_the_last_page_is_non_empty_and_the_next_is_past_the_end(total: int, size: int) -> None:
    pages = Page(items=[], total=total, page=1, size=size).pages
    last = PageRequest(pages, size)
    assert last.offset < total
    assert PageRequest(pages + 1, size).offset >= total


def make_session(**fields: object) -> Session:
    values: dict[str, object] = {
        "user_id": 1,
        "created_at": NOW - timedelta(days=1),
        "last_used_at": NOW - timedelta(days=1),
        "expires_at": NOW + timedelta(days=1),
    }
    values.update(fields)
    return Session(**values)  # type: ignore[arg-type]


def test_session_is_active_until_it_expires() -> None:
    session = make_session(expires_at=NOW + timedelta(seconds=1))
    assert session.is_active(NOW)
    assert not session.is_active(NOW + timedelta(seconds=1))
    assert not session.is_active(NOW + timedelta(days=1))


def test_revoked_session_is_not_active_even_before_expiry() -> None:
    assert not make_session(revoked_at=NOW - timedelta(hours=1)).is_active(NOW)


def test_each_session_gets_its_own_128_bit_id() -> None:
    first, second = make_session(), make_session()
    assert first.id != second.id
    assert len(new_id()) == 32
    int(new_id(), 16)


def test_principal_speaks_for_its_stored_user() -> None:
    assert Principal(user=make_user(id=7), session_id="s").user_id == 7


@pytest.mark.parametrize("given_seconds", [0, -3, 1])
def test_rate_limited_always_asks_to_wait_at_least_one_second(given_seconds: int) -> None:
    assert RateLimited(given_seconds).retry_after == 1
    assert RateLimited(90).retry_after == 90
