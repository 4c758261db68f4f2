"""The API's routers, one module per resource, each listed here: the one place where a
new module of routes is added (``app scaffold`` adds its line)."""

from entrypoints.http.routes import (
    access_tokens,
    admin,
    auth,
    email,
    health,
    jwks,
    mfa,
    orgs,
    passkeys,
    users,
)

ROUTERS = (
    access_tokens.router,
    admin.router,
    auth.router,
    email.router,
    health.router,
    jwks.router,
    mfa.router,
    orgs.router,
    orgs.invitations_router,
    passkeys.router,
    users.router,
)
