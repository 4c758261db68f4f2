"""``hot()``: what it refuses at import, and that a hot statement converts its
parameters and results as SQLAlchemy does. (Whether the driver's rows equal
SQLAlchemy's is tested on PostgreSQL: tests/integration/test_hot_statements.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, func, insert, literal, select, update

from adapters import hot_statements
from adapters.hot_statements import MAX_HOT_STATEMENTS, HotStatement, NotAHotStatement, hot
from adapters.orm import refresh_tokens, sessions, users
from adapters.repositories import REPOSITORIES

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        pytest.param(
            select(users.c.id).where(users.c.id.in_(bindparam("ids"))), "settled per", id="in"
        ),
        pytest.param(
            select(users.c.id).where(users.c.id == bindparam("x", literal_execute=True)),
            "settled per",
            id="literal",
        ),
        pytest.param(insert(refresh_tokens), "declare them", id="insert-columns-per-call"),
        pytest.param(select(users.c.id, sessions.c.id), "label it", id="two-ids"),
        pytest.param(select(func.count()).select_from(users), "label it", id="unlabelled"),
    ],
)
def test_what_sqlalchemy_settles_per_execution_is_refused(statement: object, reason: str) -> None:
    with pytest.raises(NotAHotStatement, match=reason):
        HotStatement(statement, None)  # type: ignore[arg-type]


def test_an_insert_that_skips_a_python_side_default_is_refused() -> None:
    with pytest.raises(NotAHotStatement, match="'email_key'"):
        HotStatement(insert(users), ["email", "username"])


def test_the_set_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hot_statements, "_declared", [object()] * MAX_HOT_STATEMENTS)
    with pytest.raises(NotAHotStatement, match=f"at most {MAX_HOT_STATEMENTS}"):
        hot(select(users.c.id))


def test_the_repositories_declare_a_few_and_within_the_bound() -> None:
    assert REPOSITORIES  # importing the list imports every repository
    assert 0 < len(hot_statements._declared) <= MAX_HOT_STATEMENTS


def test_parameters_go_out_in_order_with_the_statement_s_own_and_converted() -> None:
    statement = HotStatement(
        select(users.c.id.label("id"), literal(1).label("one"))
        .where(users.c.created_at < bindparam("before"), users.c.id > bindparam("after"))
        .limit(1),
        None,
    )
    paris = timezone(timedelta(hours=1))
    args = statement.args({"after": 7, "before": NOW.astimezone(paris)})
    assert args[-1] == 1  # the LIMIT the statement carries
    assert 7 in args
    assert NOW in args
    assert all(a.tzinfo is UTC for a in args if isinstance(a, datetime))
    with pytest.raises(ValueError, match="naive"):
        statement.args({"after": 7, "before": NOW.replace(tzinfo=None)})


def test_rows_come_back_by_key_with_each_column_s_conversion() -> None:
    statement = HotStatement(
        update(sessions)
        .where(sessions.c.id == bindparam("sid"))
        .values(revoked_at=bindparam("at"))
        .returning(sessions.c.id, sessions.c.revoked_at),
        None,
    )
    row = statement.row(("s1", NOW.replace(tzinfo=None)))
    assert row == {"id": "s1", "revoked_at": NOW}
    assert statement.first_key == "id"


def test_a_parameter_left_out_is_an_error_not_a_null() -> None:
    statement = HotStatement(select(users.c.id).where(users.c.email_key == bindparam("key")), None)
    with pytest.raises(KeyError, match="key"):
        statement.args({})
