"""The API's routers, one module per resource, each listed here: the one place where a
new module of routes is added (``app scaffold`` adds its line)."""

from entrypoints.http.routes import admin, auth, email, health, jwks, users

ROUTERS = (
    admin.router,
    auth.router,
    email.router,
    health.router,
    jwks.router,
    users.router,
)
