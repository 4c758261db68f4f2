"""Tokens as a forger makes them: signed with a key of the test's choosing, so that the
codecs' checks can be tried on anything."""

from __future__ import annotations

from typing import Any

import jwt

# RFC 9068's header type of an access token: a genuine-looking access payload gets it.
ACCESS_TYP = "at+jwt"


def forge(
    payload: dict[str, Any], key: str, algorithm: str = "HS256", typ: str | None = None
) -> str:
    """``payload`` signed with ``key``; an access payload gets the access header type
    unless ``typ`` says otherwise."""
    if typ is None:
        typ = ACCESS_TYP if payload.get("type") == "access" else "JWT"
    return jwt.encode(payload, key, algorithm=algorithm, headers={"typ": typ})
