"""The user repository's SQL adapter, where only the database can show it: the port's
contract itself is tests/contracts/test_user_repository.py."""

from __future__ import annotations

from sqlalchemy import insert

from adapters.database import Database
from adapters.orm import users
from domain.ports import UserRepository
from tests.integration.builders import NOW, UowFactory


async def test_a_user_inserted_through_the_table_gets_the_key_of_its_email(
    database: Database, new_uow: UowFactory
) -> None:
    row = {
        "email": "kelvin.strasse@example.com",
        "username": "bulk",
        "password_hash": "x",
        "created_at": NOW,
    }
    async with database.engine.begin() as conn:
        await conn.execute(insert(users).values(row))

    # A look-alike: the address upper-cased, in full-width characters.
    look_alike = "".join(chr(ord(c) + 0xFEE0) for c in "KELVIN.STRASSE") + "@example.com"
    async with new_uow() as uow:
        assert await uow.repository(UserRepository).email_taken(look_alike)
