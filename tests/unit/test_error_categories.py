"""Every domain error carries a category, and the category alone decides the HTTP status
and the CLI's exit status (issue 22, "Errors carry a category")."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from types import ModuleType

import pytest
import typer

from domain.errors import DomainError, ErrorCategory, InvalidValue, Raises, category_of
from entrypoints.cli.runtime import (
    EXIT_FAILURE,
    EXIT_STATUS_BY_CATEGORY,
    exit_status_of,
    reported_errors,
)
from entrypoints.http.openapi import BEARER, BODY, errors_of
from entrypoints.http.problems import STATUS_BY_CATEGORY, status_of

PACKAGES = ("domain", "application", "adapters", "entrypoints")

# The HTTP contract (API.md, "Codes used"): every error of the project keeps its code
# and its status.
CONTRACT = {
    "InvalidValue": ("validation_error", 422),
    "InvalidCredentials": ("invalid_credentials", 401),
    "InvalidToken": ("invalid_token", 401),
    "WrongPassword": ("wrong_password", 403),
    "EmailTaken": ("email_taken", 409),
    "UsernameTaken": ("username_taken", 409),
    "RateLimited": ("rate_limited", 429),
    "NotFound": ("not_found", 404),
    "UserNotFound": ("not_found", 404),
    "SessionNotFound": ("not_found", 404),
    "SigningKeyNotFound": ("not_found", 404),
    "ServiceUnavailable": ("service_unavailable", 503),
    "Overloaded": ("service_unavailable", 503),
    "LimitsUnavailable": ("service_unavailable", 503),
    "InvalidVerificationToken": ("invalid_verification_token", 400),
    "InvalidResetToken": ("invalid_reset_token", 400),
    "AlreadyVerified": ("already_verified", 409),
    "EmailNotVerified": ("email_not_verified", 403),
    "Forbidden": ("forbidden", 403),
    "CannotChangeOwnAccess": ("cannot_change_own_access", 409),
    "LastSuperuser": ("last_superuser", 409),
    "UnsupportedGrantType": ("unsupported_grant_type", 400),
}


def _modules(package: str) -> Iterator[ModuleType]:
    root = importlib.import_module(package)
    yield root
    for found in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        yield importlib.import_module(found.name)


def _project_modules() -> list[ModuleType]:
    return [module for package in PACKAGES for module in _modules(package)]


def _subclasses(cls: type[DomainError]) -> Iterator[type[DomainError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def project_errors() -> dict[str, type[DomainError]]:
    """Every DomainError subclass the project defines (not the tests' own), by name,
    once every module of the project is imported."""
    _project_modules()
    return {
        cls.__qualname__: cls
        for cls in _subclasses(DomainError)
        if cls.__module__.split(".")[0] in PACKAGES
    }


def test_every_domain_error_has_a_category() -> None:
    errors = project_errors()
    assert len(errors) >= len(CONTRACT)  # the walk found them
    missing = sorted(
        f"{cls.__module__}.{name}" for name, cls in errors.items() if category_of(cls) is None
    )
    assert missing == [], f"give these errors a `category = ErrorCategory.…`: {missing}"


def test_the_base_error_has_no_category_so_a_new_error_must_choose_one() -> None:
    class Uncategorised(DomainError):
        code = "uncategorised"

    assert category_of(DomainError) is None
    assert category_of(Uncategorised) is None
    assert category_of(Uncategorised()) is None


def test_every_error_keeps_the_code_and_status_of_the_http_contract() -> None:
    errors = project_errors()
    for name, (code, status) in CONTRACT.items():
        assert errors[name].code == code, name
        assert status_of(errors[name]) == status, name


def test_an_error_outside_the_contract_has_the_status_of_its_kind() -> None:
    # Not in API.md: none reaches a route, but each still has a clear status.
    errors = project_errors()
    assert status_of(errors["MailNotSent"]) == 503
    assert status_of(errors["SigningKeyUnreadable"]) == 503
    assert status_of(errors["SigningKeysUnavailable"]) == 400


def test_every_category_has_an_http_status_and_an_exit_status() -> None:
    assert set(STATUS_BY_CATEGORY) == set(ErrorCategory)
    assert set(EXIT_STATUS_BY_CATEGORY) == set(ErrorCategory)
    for category, status in STATUS_BY_CATEGORY.items():
        assert 400 <= status < 600, category
    # OPERATIONS.md: "Exit status: 0 success, 1 a domain error, 2 bad usage".
    assert set(EXIT_STATUS_BY_CATEGORY.values()) == {EXIT_FAILURE}


@pytest.mark.parametrize("category", list(ErrorCategory))
def test_the_category_alone_decides_the_statuses(category: ErrorCategory) -> None:
    class NewRule(DomainError):
        code = "new_rule"

    NewRule.category = category
    assert status_of(NewRule) == STATUS_BY_CATEGORY[category]
    assert exit_status_of(NewRule()) == EXIT_STATUS_BY_CATEGORY[category]


def test_an_uncategorised_error_has_no_http_status() -> None:
    class Uncategorised(DomainError):
        code = "uncategorised"

    assert status_of(Uncategorised) is None


def use_cases() -> dict[str, type]:
    """Every use case of application/: a public class with an ``async __call__``."""
    return {
        f"{module.__name__}.{name}": cls
        for module in _modules("application")
        for name, cls in vars(module).items()
        if inspect.isclass(cls)
        and cls.__module__ == module.__name__
        and not name.startswith("_")
        and inspect.iscoroutinefunction(getattr(cls, "__call__", None))
    }


def test_every_use_case_declares_the_domain_errors_it_raises() -> None:
    found = use_cases()
    assert "application.users.RegisterUser" in found
    undeclared = sorted(name for name, cls in found.items() if "raises" not in dir(cls))
    assert undeclared == [], f"declare `raises = (...)` on these use cases: {undeclared}"
    for name, cls in found.items():
        raises = cls.raises  # type: ignore[attr-defined]
        assert isinstance(raises, tuple), name
        for error in raises:
            assert issubclass(error, DomainError), (name, error)
            assert category_of(error) is not None, (name, error)


def test_a_command_ends_with_the_exit_status_of_the_errors_category(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class NoteLimitReached(DomainError):
        category = ErrorCategory.CONFLICT
        code = "note_limit"
        message = "A user has at most 100 notes."

    with pytest.raises(typer.Exit) as ended, reported_errors():
        raise NoteLimitReached()
    assert ended.value.exit_code == EXIT_STATUS_BY_CATEGORY[ErrorCategory.CONFLICT]
    assert capsys.readouterr().err == "error: A user has at most 100 notes.\n"


def test_a_command_reports_an_uncategorised_error_as_unexpected(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Uncategorised(DomainError):
        code = "uncategorised"

    with pytest.raises(typer.Exit) as ended, reported_errors():
        raise Uncategorised("whatever")
    assert ended.value.exit_code == EXIT_FAILURE
    assert capsys.readouterr().err == "error: unexpected Uncategorised: whatever\n"


# --- The documented responses (entrypoints/http/openapi.py) -----------------------------


class NoteLimitReached(DomainError):
    category = ErrorCategory.CONFLICT
    code = "note_limit"


class CreateNote:
    """A use case as a developer adds one."""

    raises: Raises = (InvalidValue, NoteLimitReached)

    async def __call__(self) -> None: ...


def test_a_routes_errors_follow_from_its_use_case_and_the_http_layer() -> None:
    responses = errors_of(CreateNote, BEARER, BODY)
    assert sorted(responses) == [401, 403, 409, 413, 422, 503]
    assert responses[409]["description"] == "Conflict: `note_limit`."
    # The bearer dependency: no token, or a bad one (Authenticate's).
    assert responses[401]["description"] == "Unauthorized: `invalid_token`, `not_authenticated`."
    assert "WWW-Authenticate" in responses[401]["headers"]
    # A personal access token without the route's scope.
    assert responses[403]["description"] == "Forbidden: `insufficient_scope`."
    ref = responses[422]["content"]["application/problem+json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/ValidationProblem"
    # Every use case reaches the database.
    assert responses[503]["description"] == "Service Unavailable: `service_unavailable`."


def test_a_use_case_that_declares_nothing_cannot_be_documented() -> None:
    class Undeclared:
        async def __call__(self) -> None: ...

    with pytest.raises(TypeError, match="Undeclared declares no `raises`"):
        errors_of(Undeclared)


def test_an_error_without_a_category_cannot_be_documented() -> None:
    class Uncategorised(DomainError):
        code = "uncategorised"

    class Raising:
        raises: Raises = (Uncategorised,)

    with pytest.raises(TypeError, match="Uncategorised has no category"):
        errors_of(Raising)
