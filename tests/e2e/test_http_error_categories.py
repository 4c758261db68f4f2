"""A domain error's HTTP status follows from its category, and every route documents the
statuses of the errors its use cases declare (issue 22, "Errors carry a category").

The errors here are new ones, as a developer adding a rule would write them: nothing
but their category tells the app how to answer them.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Annotated, Any, get_args, get_origin

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from application.users import RegisterUser
from domain.errors import DomainError, ErrorCategory, category_of
from tests.e2e.conftest import PASSWORD, USERS, Api, AppFactory, assert_problem

NEW_USER = {"email": "ada@example.com", "username": "ada", "password": PASSWORD}
# The HTTP contract's statuses, as API.md gives them for the errors of each kind.
STATUS = {
    ErrorCategory.REJECTED: 400,
    ErrorCategory.UNAUTHENTICATED: 401,
    ErrorCategory.FORBIDDEN: 403,
    ErrorCategory.NOT_FOUND: 404,
    ErrorCategory.CONFLICT: 409,
    ErrorCategory.INVALID: 422,
    ErrorCategory.THROTTLED: 429,
    ErrorCategory.UNAVAILABLE: 503,
}


class NoteLimitReached(DomainError):
    """A rule a developer adds: a user has at most 100 notes."""

    category = ErrorCategory.CONFLICT
    code = "note_limit"
    message = "A user has at most 100 notes."


class Uncategorised(DomainError):
    """A programming error: an error that says nothing of its kind."""

    code = "uncategorised"
    message = "Whatever."


class Raising:
    """A use case stood in for a route's: it raises ``error``."""

    def __init__(self, error: DomainError) -> None:
        self.error = error

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error


async def test_a_new_conflict_answers_409_with_its_own_code(app_factory: AppFactory) -> None:
    async with app_factory(use_cases={RegisterUser: Raising(NoteLimitReached())}) as api:
        response = await api.client.post(USERS, json=NEW_USER)
    body = assert_problem(response, 409, "note_limit")
    assert body["title"] == "Conflict"
    assert body["detail"] == "A user has at most 100 notes."


@pytest.mark.parametrize("category", list(ErrorCategory))
async def test_each_category_answers_its_status(
    app_factory: AppFactory, category: ErrorCategory
) -> None:
    error = type("NewRule", (DomainError,), {"category": category, "code": "new_rule"})
    raised = error("Refused by a new rule.")
    if category in {ErrorCategory.THROTTLED, ErrorCategory.UNAVAILABLE}:
        raised.retry_after = 7
    async with app_factory(use_cases={RegisterUser: Raising(raised)}) as api:
        response = await api.client.post(USERS, json=NEW_USER)
    status = STATUS[category]
    if category is ErrorCategory.INVALID:
        # The 422 shape of every invalid value: its ``errors`` list.
        assert_problem(response, 422, "new_rule")
        assert response.json()["errors"] == [
            {"loc": ["body"], "msg": "Refused by a new rule.", "type": "value_error"}
        ]
    else:
        assert_problem(response, status, "new_rule")
    if raised.retry_after is not None:
        assert response.headers["retry-after"] == "7"


async def test_an_error_without_a_category_is_an_internal_error_not_a_guess(
    app_factory: AppFactory,
) -> None:
    async with app_factory(use_cases={RegisterUser: Raising(Uncategorised())}) as api:
        response = await api.client.post(USERS, json=NEW_USER)
        assert response.status_code == 500, response.text
        assert response.json()["code"] == "internal_error"
        # The app goes on serving.
        assert (await api.client.get("/health/live")).status_code == 200


# --- The documented responses ---------------------------------------------------------


def _use_cases_of(dependant: Dependant) -> Iterator[type]:
    """The use cases a route asks for (``Annotated[LogIn, use(LogIn)]``), its own and
    those of its dependencies (the bearer token's ``Authenticate``)."""
    if dependant.call is not None:
        try:
            signature = inspect.signature(dependant.call, eval_str=True)
        except (TypeError, ValueError, NameError):
            signature = None
        for parameter in signature.parameters.values() if signature else ():
            hint = parameter.annotation
            if get_origin(hint) is Annotated:
                kind = get_args(hint)[0]
                if inspect.isclass(kind) and kind.__module__.startswith("application."):
                    yield kind
    for sub in dependant.dependencies:
        yield from _use_cases_of(sub)


def _routes(api: Api) -> Iterator[tuple[str, str, APIRoute]]:
    for route in api.app.routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            for method in route.methods:
                yield method.lower(), route.path_format, route


async def test_every_route_documents_the_errors_its_use_cases_declare(api: Api) -> None:
    document = (await api.client.get("/openapi.json")).json()
    checked = 0
    for method, path, route in _routes(api):
        responses = document["paths"][path][method]["responses"]
        for use_case in set(_use_cases_of(route.dependant)):
            where = f"{method.upper()} {path} ({use_case.__name__})"
            assert hasattr(use_case, "raises"), f"{where}: the use case declares no `raises`"
            for error in use_case.raises:
                category = category_of(error)
                assert category is not None, f"{where}: {error.__name__} has no category"
                status = str(STATUS[category])
                assert status in responses, f"{where}: {error.__name__} ({status}) undocumented"
                # The problem's description names the codes it may carry.
                assert f"`{error.code}`" in responses[status]["description"], where
                checked += 1
    assert checked > 50  # the walk found the routes' use cases


async def test_the_statuses_that_were_missing_from_the_document_are_documented(
    api: Api,
) -> None:
    # LogIn refuses an unconfirmed address (403 email_not_verified, with
    # REQUIRE_VERIFIED_EMAIL); the last superuser cannot delete their own account (409
    # last_superuser), nor one already gone (404). Before: undocumented.
    paths = (await api.client.get("/openapi.json")).json()["paths"]
    login = paths["/api/v1/auth/login"]["post"]["responses"]
    assert "`email_not_verified`" in login["403"]["description"]
    delete_me = paths["/api/v1/users/me"]["delete"]["responses"]
    assert "`last_superuser`" in delete_me["409"]["description"]
    assert "404" in delete_me
