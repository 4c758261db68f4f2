"""What the repositories share: the columns they read, and splitting a joined row."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select

from adapters.executors import Row
from adapters.orm import sessions, users

USER_COLUMNS = (
    users.c.id,
    users.c.email,
    users.c.username,
    users.c.password_hash,
    users.c.full_name,
    users.c.is_active,
    users.c.is_superuser,
    users.c.is_verified,
    users.c.token_version,
    users.c.created_at,
)
SESSION_COLUMNS = tuple(sessions.c)
USER_FIELDS = [c.name for c in USER_COLUMNS if c.name != "id"]

# The ids of a user's sessions (the parameter is "uid": UPDATE statements may not
# use a column's name).
USER_SESSION_IDS = select(sessions.c.id).where(sessions.c.user_id == bindparam("uid"))

SESSION_PREFIX = "s_"
TOKEN_PREFIX = "t_"  # noqa: S105 - a column label prefix


def split(row: Row, *prefixes: str) -> list[dict[str, Any]]:
    """A joined row's columns, by the label prefix of their table (unprefixed last)."""
    parts: list[dict[str, Any]] = [{} for _ in range(len(prefixes) + 1)]
    for key, value in row.items():
        for index, prefix in enumerate(prefixes):
            if key.startswith(prefix):
                parts[index][key.removeprefix(prefix)] = value
                break
        else:
            parts[-1][key] = value
    return parts
