"""What a personal access token may be used for: its scopes.

A session (a login) may do everything its user may; a token only what its scopes name,
and never what changes how the account is protected. Each route declares the one scope
it needs (``entrypoints/http/dependencies.py``), or that it takes sessions only.
"""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    PROFILE_READ = "profile:read"
    PROFILE_WRITE = "profile:write"
    ORGS_READ = "orgs:read"
    ORGS_WRITE = "orgs:write"
    ADMIN_READ = "admin:read"
    ADMIN_WRITE = "admin:write"

    @property
    def needs_superuser(self) -> bool:
        """Only a superuser may hold it, and it works only while they still are one."""
        return self in (Scope.ADMIN_READ, Scope.ADMIN_WRITE)
