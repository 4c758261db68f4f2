"""Adapters: the domain's ports implemented with SQLAlchemy, argon2, PyJWT and limits."""
