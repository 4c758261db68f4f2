"""Domain objects shaped into JSON bodies, shared by the API and the CLI. Nothing secret
gets through: each body lists its fields explicitly."""

from __future__ import annotations

from typing import Any

from domain.model import Page, Session, TokenPair, User


def user_body(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "username": user.username,
        "full_name": user.full_name,
        "is_active": user.is_active,
        "is_superuser": user.is_superuser,
        "created_at": user.created_at.isoformat(),
    }


def public_user_body(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "full_name": user.full_name,
        "created_at": user.created_at.isoformat(),
    }


def page_body(page: Page[User]) -> dict[str, Any]:
    return {
        "items": [public_user_body(user) for user in page.items],
        "total": page.total,
        "page": page.page,
        "size": page.size,
        "pages": page.pages,
    }


def session_body(session: Session, current_session_id: str) -> dict[str, Any]:
    return {
        "id": session.id,
        "created_at": session.created_at.isoformat(),
        "last_used_at": session.last_used_at.isoformat(),
        "user_agent": session.user_agent,
        "current": session.id == current_session_id,
    }


def token_body(pair: TokenPair) -> dict[str, Any]:
    return {
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "token_type": "bearer",
        "expires_in": pair.expires_in,
    }
