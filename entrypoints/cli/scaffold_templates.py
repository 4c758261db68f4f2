"""The files ``app scaffold resource`` writes, as ``string.Template`` texts: the same
six places as the README's guide, with get, update and delete too.

Placeholders: ``$name`` / ``$names`` (snake_case, singular and plural), ``$Name`` /
``$Names`` (CamelCase).
"""

from __future__ import annotations

DOMAIN = '''"""$Names: a resource owned by a user."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime

from domain.errors import InvalidValue, NotFound

NAME_MAX_LENGTH = 100


@dataclass(eq=False)
class $Name:
    owner_id: int
    name: str
    created_at: datetime
    id: int | None = None  # assigned by the repository on add


class ${Name}NotFound(NotFound):
    message = "No such $name."


def validate_${name}_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= NAME_MAX_LENGTH or "\\x00" in name:
        raise InvalidValue("name", f"must be 1-{NAME_MAX_LENGTH} characters")
    return name


class ${Name}Repository(abc.ABC):
    @abc.abstractmethod
    async def add(self, $name: $Name) -> $Name:
        """Store a new $name and assign its ``id``."""

    @abc.abstractmethod
    async def get(self, ${name}_id: int, owner_id: int) -> $Name | None:
        """The owner's $name with this id; None when there is none (or not theirs)."""

    @abc.abstractmethod
    async def list_for_owner(self, owner_id: int) -> list[$Name]:
        """The owner's $names, oldest first."""

    @abc.abstractmethod
    async def rename(self, ${name}_id: int, owner_id: int, name: str) -> bool:
        """Give the owner's $name a new name; whether there was one to rename."""

    @abc.abstractmethod
    async def delete(self, ${name}_id: int, owner_id: int) -> bool:
        """Delete the owner's $name; whether there was one to delete."""
'''

APPLICATION = '''"""$Names: creating, reading, listing, renaming and deleting one's own."""

from __future__ import annotations

from application.auth import UowFactory
from domain.model import Principal
from domain.ports import Clock
from domain.$names import $Name, ${Name}NotFound, ${Name}Repository, validate_${name}_name


class Create$Name:
    """Create a $name owned by the caller."""

    def __init__(self, uow: UowFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, principal: Principal, name: str) -> $Name:
        $name = $Name(
            owner_id=principal.user_id,
            name=validate_${name}_name(name),
            created_at=self._clock.now(),
        )
        async with self._uow() as uow:
            await uow.repository(${Name}Repository).add($name)
            await uow.commit()
        return $name


class Get$Name:
    """One of the caller's $names; another user's is not found."""

    def __init__(self, reader: UowFactory) -> None:
        self._reader = reader

    async def __call__(self, principal: Principal, ${name}_id: int) -> $Name:
        async with self._reader() as uow:
            found = await uow.repository(${Name}Repository).get(${name}_id, principal.user_id)
        if found is None:
            raise ${Name}NotFound()
        return found


class List$Names:
    """The caller's $names, oldest first."""

    def __init__(self, reader: UowFactory) -> None:
        self._reader = reader

    async def __call__(self, principal: Principal) -> list[$Name]:
        async with self._reader() as uow:
            return await uow.repository(${Name}Repository).list_for_owner(principal.user_id)


class Rename$Name:
    """Give one of the caller's $names a new name."""

    def __init__(self, uow: UowFactory) -> None:
        self._uow = uow

    async def __call__(self, principal: Principal, ${name}_id: int, name: str) -> $Name:
        name = validate_${name}_name(name)
        async with self._uow() as uow:
            repository = uow.repository(${Name}Repository)
            if not await repository.rename(${name}_id, principal.user_id, name):
                raise ${Name}NotFound()
            renamed = await repository.get(${name}_id, principal.user_id)
            await uow.commit()
        assert renamed is not None
        return renamed


class Delete$Name:
    """Delete one of the caller's $names."""

    def __init__(self, uow: UowFactory) -> None:
        self._uow = uow

    async def __call__(self, principal: Principal, ${name}_id: int) -> None:
        async with self._uow() as uow:
            if not await uow.repository(${Name}Repository).delete(${name}_id, principal.user_id):
                raise ${Name}NotFound()
            await uow.commit()
'''

ADAPTER = '''"""The $names table and repository."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, String, Table, bindparam, delete, insert, select, update

from adapters.orm import BigId, UTCDateTime, metadata
from adapters.registry import SqlRepository
from domain.$names import $Name, ${Name}Repository

$names = Table(
    "$names",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "owner_id",
        BigId,
        ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("name", String(100), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# Parameters of UPDATE statements must not share a name with a column of the table.
_THE_ONE = ($names.c.id == bindparam("rid"), $names.c.owner_id == bindparam("oid"))
_INSERT = insert($names).returning($names.c.id)
_GET = select($names).where(*_THE_ONE)
_OWNED_BY = select($names).where($names.c.owner_id == bindparam("oid")).order_by($names.c.id)
_RENAME = update($names).where(*_THE_ONE).values(name=bindparam("new_name"))
_DELETE = delete($names).where(*_THE_ONE)


class Sql${Name}Repository(SqlRepository, ${Name}Repository):
    async def add(self, $name: $Name) -> $Name:
        values = {"owner_id": $name.owner_id, "name": $name.name, "created_at": $name.created_at}
        $name.id = await self._db.scalar(_INSERT, values)
        return $name

    async def get(self, ${name}_id: int, owner_id: int) -> $Name | None:
        row = await self._db.one(_GET, {"rid": ${name}_id, "oid": owner_id})
        return $Name(**row) if row else None

    async def list_for_owner(self, owner_id: int) -> list[$Name]:
        return [$Name(**row) for row in await self._db.all(_OWNED_BY, {"oid": owner_id})]

    async def rename(self, ${name}_id: int, owner_id: int, name: str) -> bool:
        params = {"rid": ${name}_id, "oid": owner_id, "new_name": name}
        return await self._db.execute(_RENAME, params) == 1

    async def delete(self, ${name}_id: int, owner_id: int) -> bool:
        return await self._db.execute(_DELETE, {"rid": ${name}_id, "oid": owner_id}) == 1
'''

ROUTES = '''"""``/api/v1/$names``: the caller's $names."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from starlette.responses import Response

from application.$names import (
    Create$Name,
    Delete$Name,
    Get$Name,
    List$Names,
    Rename$Name,
)
from entrypoints.http.dependencies import CurrentPrincipal, json_response, use
from entrypoints.http.openapi import described, problems
from entrypoints.http.schemas import Strict
from entrypoints.presenters import Body

router = APIRouter(prefix="/api/v1/$names", tags=["$names"])
${Name}Id = Annotated[int, Path(ge=1, le=2**63 - 1)]


class ${Name}Create(Strict):
    name: str


class ${Name}Update(Strict):
    name: str


class $Name(Body):
    id: int
    name: str
    created_at: datetime


@router.post(
    "/",
    summary="Create a $name",
    description=described(Create$Name),
    status_code=201,
    response_model=$Name,
    responses=problems(401, 413, 422, 503),
)
async def create_$name(
    body: ${Name}Create,
    principal: CurrentPrincipal,
    create: Annotated[Create$Name, use(Create$Name)],
) -> Response:
    return json_response($Name.of(await create(principal, body.name)), status_code=201)


@router.get(
    "/",
    summary="List my $names",
    description=described(List$Names),
    response_model=list[$Name],
    responses=problems(401, 503),
)
async def list_$names(
    principal: CurrentPrincipal,
    list_mine: Annotated[List$Names, use(List$Names)],
) -> Response:
    return json_response([$Name.of($name) for $name in await list_mine(principal)])


@router.get(
    "/{${name}_id}",
    summary="One of my $names",
    description=described(Get$Name),
    response_model=$Name,
    responses=problems(401, 404, 422, 503),
)
async def get_$name(
    ${name}_id: ${Name}Id,
    principal: CurrentPrincipal,
    get: Annotated[Get$Name, use(Get$Name)],
) -> Response:
    return json_response($Name.of(await get(principal, ${name}_id)))


@router.patch(
    "/{${name}_id}",
    summary="Rename one of my $names",
    description=described(Rename$Name),
    response_model=$Name,
    responses=problems(401, 404, 413, 422, 503),
)
async def rename_$name(
    ${name}_id: ${Name}Id,
    body: ${Name}Update,
    principal: CurrentPrincipal,
    rename: Annotated[Rename$Name, use(Rename$Name)],
) -> Response:
    return json_response($Name.of(await rename(principal, ${name}_id, body.name)))


@router.delete(
    "/{${name}_id}",
    summary="Delete one of my $names",
    description=described(Delete$Name),
    status_code=204,
    responses=problems(401, 404, 422, 503),
)
async def delete_$name(
    ${name}_id: ${Name}Id,
    principal: CurrentPrincipal,
    remove: Annotated[Delete$Name, use(Delete$Name)],
) -> Response:
    await remove(principal, ${name}_id)
    return Response(status_code=204)
'''

UNIT_TEST = '''"""The $names use cases, on fakes."""

import pytest

from application.$names import Create$Name, Delete$Name, Get$Name, List$Names, Rename$Name
from domain.errors import InvalidValue
from domain.model import Principal
from domain.$names import $Name, ${Name}NotFound, ${Name}Repository
from tests.fakes import FakeClock, FakeUnitOfWork, make_user


class Fake${Name}Repository(${Name}Repository):
    def __init__(self) -> None:
        self.rows: dict[int, $Name] = {}

    async def add(self, $name: $Name) -> $Name:
        $name.id = len(self.rows) + 1
        self.rows[$name.id] = $name
        return $name

    async def get(self, ${name}_id: int, owner_id: int) -> $Name | None:
        found = self.rows.get(${name}_id)
        return found if found is not None and found.owner_id == owner_id else None

    async def list_for_owner(self, owner_id: int) -> list[$Name]:
        return [row for row in self.rows.values() if row.owner_id == owner_id]

    async def rename(self, ${name}_id: int, owner_id: int, name: str) -> bool:
        found = await self.get(${name}_id, owner_id)
        if found is not None:
            found.name = name
        return found is not None

    async def delete(self, ${name}_id: int, owner_id: int) -> bool:
        found = await self.get(${name}_id, owner_id)
        if found is not None:
            del self.rows[${name}_id]
        return found is not None


ADA = Principal(user=make_user(id=7), session_id="s")
BOB = Principal(user=make_user(id=8, email="bob@example.com", username="bob"), session_id="t")


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork(repositories={${Name}Repository: Fake${Name}Repository()})


async def test_a_created_${name}_belongs_to_its_creator(uow: FakeUnitOfWork) -> None:
    $name = await Create$Name(lambda: uow, FakeClock())(ADA, "  First ")

    assert ($name.owner_id, $name.name) == (7, "First")
    assert uow.commits == 1
    assert await List$Names(lambda: uow)(ADA) == [$name]
    assert await List$Names(lambda: uow)(BOB) == []


async def test_a_blank_name_is_refused_and_nothing_is_written(uow: FakeUnitOfWork) -> None:
    with pytest.raises(InvalidValue):
        await Create$Name(lambda: uow, FakeClock())(ADA, " ")
    assert uow.commits == 0


async def test_another_users_${name}_is_not_found(uow: FakeUnitOfWork) -> None:
    $name = await Create$Name(lambda: uow, FakeClock())(ADA, "First")
    assert $name.id is not None

    assert await Get$Name(lambda: uow)(ADA, $name.id) is $name
    with pytest.raises(${Name}NotFound):
        await Get$Name(lambda: uow)(BOB, $name.id)
    with pytest.raises(${Name}NotFound):
        await Rename$Name(lambda: uow)(BOB, $name.id, "Mine now")
    with pytest.raises(${Name}NotFound):
        await Delete$Name(lambda: uow)(BOB, $name.id)


async def test_a_${name}_is_renamed_and_deleted(uow: FakeUnitOfWork) -> None:
    $name = await Create$Name(lambda: uow, FakeClock())(ADA, "First")
    assert $name.id is not None

    renamed = await Rename$Name(lambda: uow)(ADA, $name.id, " Second ")
    assert renamed.name == "Second"
    await Delete$Name(lambda: uow)(ADA, $name.id)
    assert await List$Names(lambda: uow)(ADA) == []
'''

E2E_TEST = '''"""``/api/v1/$names`` over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.e2e.conftest import Api, assert_problem, bearer

$NAMES = "/api/v1/$names/"


async def test_a_${name}_is_created_listed_read_renamed_and_deleted(api: Api) -> None:
    _, tokens = await api.user_with_tokens()
    auth = bearer(tokens["access_token"])

    created = await api.client.post($NAMES, json={"name": " First "}, headers=auth)
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == {"id", "name", "created_at"}
    assert body["name"] == "First"
    one = f"{$NAMES}{body['id']}"

    assert (await api.client.get($NAMES, headers=auth)).json() == [body]
    assert (await api.client.get(one, headers=auth)).json() == body
    renamed = await api.client.patch(one, json={"name": "Second"}, headers=auth)
    assert renamed.json() == {**body, "name": "Second"}
    assert (await api.client.delete(one, headers=auth)).status_code == 204
    assert_problem(await api.client.get(one, headers=auth), 404, "not_found")


async def test_one_users_${names}_are_hidden_from_another(api: Api) -> None:
    _, ada = await api.user_with_tokens()
    _, bob = await api.user_with_tokens()
    created = await api.client.post(
        $NAMES, json={"name": "Ada's"}, headers=bearer(ada["access_token"])
    )
    one = f"{$NAMES}{created.json()['id']}"
    as_bob = bearer(bob["access_token"])

    assert (await api.client.get($NAMES, headers=as_bob)).json() == []
    assert_problem(await api.client.get(one, headers=as_bob), 404, "not_found")
    assert_problem(
        await api.client.patch(one, json={"name": "Bob's"}, headers=as_bob), 404, "not_found"
    )
    assert_problem(await api.client.delete(one, headers=as_bob), 404, "not_found")


async def test_bad_input_and_no_token_are_refused(api: Api) -> None:
    _, tokens = await api.user_with_tokens()
    auth = bearer(tokens["access_token"])

    assert_problem(await api.client.get($NAMES), 401, "not_authenticated")
    for body in ({"name": " "}, {"name": "x" * 101}, {"name": "ok", "owner_id": 1}, {}):
        response = await api.client.post($NAMES, json=body, headers=auth)
        assert_problem(response, 422, "validation_error")
    for bad in ("0", "-1", "abc", str(2**63)):
        response = await api.client.get(f"{$NAMES}{bad}", headers=auth)
        assert_problem(response, 422, "validation_error")
'''
