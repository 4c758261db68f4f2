"""In-memory fakes of the domain's ports, faithful enough to test every use case.

The fake unit of work works on a copy of the store and writes it back only on
``commit()``, so "nothing is written on error" is tested for real. Every fake
repository, the project's (``FAKES``) and a new resource's alike, keeps its rows in
that copy; ``tests/contracts`` checks each against the SQL adapter of its port.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings

from application.tokens import TokenPolicy
from domain.access_tokens import AccessToken, AccessTokenRepository
from domain.audit import AuditEvent, AuditFilter, AuditLog
from domain.email_tokens import EmailToken, EmailTokenRepository, Purpose
from domain.errors import (
    EmailTaken,
    InvalidToken,
    LimitsUnavailable,
    PasskeyAlreadyRegistered,
    UsernameTaken,
)
from domain.mail import Mail, MailNotSent, MailTemplates, MailTransport, RenderedMail
from domain.mfa import (
    MAX_FAILURES,
    MfaStatus,
    MfaToken,
    MfaTokenRepository,
    SecondFactorRepository,
    TotpFactor,
)
from domain.model import (
    Credentials,
    Page,
    PageRequest,
    Principal,
    ProfileUpdate,
    RefreshToken,
    Session,
    User,
    UserFilter,
)
from domain.orgs import (
    Invitation,
    InvitationRepository,
    Member,
    Membership,
    Org,
    OrgRepository,
    Role,
    SlugTaken,
)
from domain.outbox import OutboxMessage, OutboxRepository, OutboxStats, Status
from domain.passkeys import (
    Assertion,
    Ceremony,
    Challenge,
    ChallengeRepository,
    Passkey,
    PasskeyRepository,
)
from domain.ports import (
    Clock,
    FailedLoginCounter,
    PasswordHasher,
    RateLimits,
    RefreshTokenRepository,
    SessionRepository,
    UnitOfWork,
    UserRepository,
)
from domain.rules import canonical
from domain.signing_keys import Retirement, SigningKey, SigningKeyRepository, in_order

R = TypeVar("R")


@dataclass
class Store:
    users: dict[int, User] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    tokens: dict[str, RefreshToken] = field(default_factory=dict)
    email_tokens: dict[str, EmailToken] = field(default_factory=dict)
    outbox: dict[str, OutboxMessage] = field(default_factory=dict)
    audit: list[AuditEvent] = field(default_factory=list)
    next_user_id: int = 1
    # The rows of other tables (a new resource's), by table name.
    tables: dict[str, dict[Any, Any]] = field(default_factory=dict)

    def table(self, name: str) -> dict[Any, Any]:
        """The rows of the table ``name``, by key, in this copy of the store."""
        return self.tables.setdefault(name, {})


class FakeUserRepository(UserRepository):
    def __init__(self, store: Store) -> None:
        self.store = store

    def _check_unique(self, user: User) -> None:
        for other in self.store.users.values():
            if other.id == user.id:
                continue
            if canonical(other.email) == canonical(user.email):
                raise EmailTaken()
            if canonical(other.username) == canonical(user.username):
                raise UsernameTaken()

    async def add(self, user: User) -> User:
        self._check_unique(user)
        user.id = self.store.next_user_id
        self.store.next_user_id += 1
        self.store.users[user.id] = copy.copy(user)
        return user

    async def get(self, user_id: int) -> User | None:
        user = self.store.users.get(user_id)
        return copy.copy(user) if user else None

    async def get_by_login(self, login: str) -> User | None:
        for user in self.store.users.values():
            if canonical(login) in (canonical(user.email), canonical(user.username)):
                return copy.copy(user)
        return None

    async def get_by_email(self, email: str) -> User | None:
        for user in self.store.users.values():
            if canonical(user.email) == canonical(email):
                return copy.copy(user)
        return None

    async def get_with_session(
        self, user_id: int, session_id: str
    ) -> tuple[User, Session | None] | None:
        user = await self.get(user_id)
        if user is None:
            return None
        session = self.store.sessions.get(session_id)
        if session is not None and session.user_id != user_id:
            session = None
        return user, copy.copy(session) if session else None

    async def email_taken(self, email: str, *, except_user: int | None = None) -> bool:
        return any(
            canonical(u.email) == canonical(email) and u.id != except_user
            for u in self.store.users.values()
        )

    async def username_taken(self, username: str, *, except_user: int | None = None) -> bool:
        return any(
            canonical(u.username) == canonical(username) and u.id != except_user
            for u in self.store.users.values()
        )

    async def update_profile(
        self, user_id: int, changes: ProfileUpdate, *, if_current: Credentials
    ) -> bool:
        if not changes.fields():  # nothing to write: like the SQL adapter, no check either
            return True
        user = self.store.users.get(user_id)
        if user is None or not user.is_active or Credentials.of(user) != if_current:
            return False
        changed = replace(user, **changes.fields())  # type: ignore[arg-type]
        if changes.unverifies:
            changed.is_verified = False
        self._check_unique(changed)
        self.store.users[user_id] = changed
        return True

    async def set_password_hash(
        self, user_id: int, new_hash: str, *, if_hash: str | None = None
    ) -> bool:
        user = self.store.users.get(user_id)
        if user is None or (if_hash is not None and user.password_hash != if_hash):
            return False
        user.password_hash = new_hash
        return True

    async def mark_verified(self, user_id: int, *, if_email: str) -> bool:
        user = self.store.users.get(user_id)
        if user is None or not user.is_active or user.email != if_email:
            return False
        user.is_verified = True
        return True

    async def update_details(self, user_id: int, changes: ProfileUpdate) -> bool:
        user = self.store.users.get(user_id)
        if user is None:
            return False
        changed = replace(user, **changes.fields())  # type: ignore[arg-type]
        if changes.unverifies:
            changed.is_verified = False
        self._check_unique(changed)
        self.store.users[user_id] = changed
        return True

    async def set_verified(self, user_id: int, verified: bool) -> bool:
        user = self.store.users.get(user_id)
        if user is None:
            return False
        user.is_verified = verified
        return True

    def _last_superuser(self, user: User) -> bool:
        others = [
            u
            for u in self.store.users.values()
            if u.id != user.id and u.is_superuser and u.is_active
        ]
        return user.is_superuser and user.is_active and not others

    async def set_active(self, user_id: int, active: bool) -> bool:
        user = self.store.users.get(user_id)
        if user is None or user.is_active == active:
            return False
        if not active and self._last_superuser(user):
            return False
        user.is_active = active
        return True

    async def set_superuser(self, user_id: int, superuser: bool) -> bool:
        user = self.store.users.get(user_id)
        if user is None or user.is_superuser == superuser:
            return False
        if not superuser and self._last_superuser(user):
            return False
        user.is_superuser = superuser
        return True

    async def revoke_tokens(self, user_id: int) -> bool:
        user = self.store.users.get(user_id)
        if user is None:
            return False
        user.token_version += 1
        return True

    async def delete(self, user_id: int) -> bool:
        # Like the SQL adapter, the sessions and tokens go before the guard decides: a
        # refused delete leaves them gone until the caller rolls back.
        gone = {s.id for s in self.store.sessions.values() if s.user_id == user_id}
        self.store.sessions = {k: v for k, v in self.store.sessions.items() if k not in gone}
        self.store.tokens = {k: v for k, v in self.store.tokens.items() if v.session_id not in gone}
        user = self.store.users.get(user_id)
        if user is None or self._last_superuser(user):
            return False
        self.store.users.pop(user_id, None)
        self.store.email_tokens = {
            k: v for k, v in self.store.email_tokens.items() if v.user_id != user_id
        }
        # The second factors go with their user, as the foreign keys cascade.
        self.store.table("totp_factors").pop(user_id, None)
        codes = self.store.table("recovery_codes")
        for key in [key for key in codes if key[0] == user_id]:
            del codes[key]
        for name in ("mfa_tokens", "passkeys", "webauthn_challenges", "access_tokens"):
            rows = self.store.table(name)
            for key in [key for key, row in rows.items() if row.user_id == user_id]:
                del rows[key]
        members = self.store.table("org_members")
        for key in [key for key in members if key[1] == user_id]:
            del members[key]
        return True

    async def list_page(self, page: PageRequest, *, active_only: bool) -> tuple[list[User], int]:
        users = sorted(
            (u for u in self.store.users.values() if u.is_active or not active_only),
            key=lambda u: u.id or 0,
        )
        return [copy.copy(u) for u in users[page.offset : page.offset + page.size]], len(users)

    async def search_page(self, where: UserFilter, page: PageRequest) -> tuple[list[User], int]:
        def matches(user: User) -> bool:
            q = where.q.lower() if where.q is not None else None
            return (
                (q is None or q in user.email.lower() or q in user.username.lower())
                and where.is_active in (None, user.is_active)
                and where.is_superuser in (None, user.is_superuser)
                and where.is_verified in (None, user.is_verified)
            )

        found = sorted(
            (u for u in self.store.users.values() if matches(u)), key=lambda u: u.id or 0
        )
        return [copy.copy(u) for u in found[page.offset : page.offset + page.size]], len(found)


class FakeSessionRepository(SessionRepository):
    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(self, session: Session) -> bool:
        user = self.store.users.get(session.user_id)
        if user is None or not user.is_active or user.token_version != session.token_version:
            return False
        self.store.sessions[session.id] = copy.copy(session)
        return True

    async def get(self, session_id: str) -> Session | None:
        session = self.store.sessions.get(session_id)
        return copy.copy(session) if session else None

    async def list_for_user(self, user_id: int) -> list[Session]:
        found = [copy.copy(s) for s in self.store.sessions.values() if s.user_id == user_id]
        return sorted(found, key=lambda s: (s.created_at, s.id), reverse=True)

    async def extend(self, session_id: str, used_at: datetime, expires_at: datetime) -> None:
        # Like the adapter's UPDATE: a session that is gone is left alone, no error.
        session = self.store.sessions.get(session_id)
        if session is not None:
            session.last_used_at = used_at
            session.expires_at = expires_at

    async def mark_authenticated(self, session_id: str, at: datetime) -> bool:
        session = self.store.sessions.get(session_id)
        if session is None or not session.is_active(at):
            return False
        session.authenticated_at = at
        return True

    async def revoke(self, session_id: str, at: datetime) -> None:
        session = self.store.sessions.get(session_id)
        if session and session.revoked_at is None:
            session.revoked_at = at
        for token in self.store.tokens.values():
            if token.session_id == session_id and token.revoked_at is None:
                token.revoked_at = at

    async def revoke_all(self, user_id: int, at: datetime) -> None:
        for session in list(self.store.sessions.values()):
            if session.user_id == user_id:
                await self.revoke(session.id, at)

    async def delete_orphans(self, now: datetime, limit: int, *, dry_run: bool = False) -> int:
        expired = [s.id for s in self.store.sessions.values() if s.expires_at < now]
        if dry_run:
            return len(expired)
        alive = {t.session_id for t in self.store.tokens.values()}
        doomed = [sid for sid in expired if sid not in alive][:limit]
        for sid in doomed:
            del self.store.sessions[sid]
        return len(doomed)


class FakeRefreshTokenRepository(RefreshTokenRepository):
    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(self, token: RefreshToken) -> None:
        self.store.tokens[token.id] = copy.copy(token)

    async def get_with_owner(self, token_id: str) -> tuple[RefreshToken, Session, User] | None:
        token = self.store.tokens.get(token_id)
        if token is None:
            return None
        session = self.store.sessions.get(token.session_id)
        user = self.store.users.get(session.user_id) if session else None
        if session is None or user is None:
            return None
        return copy.copy(token), copy.copy(session), copy.copy(user)

    async def mark_rotated(self, token_id: str, at: datetime) -> bool:
        token = self.store.tokens.get(token_id)
        if token is None or token.rotated_at is not None or token.revoked_at is not None:
            return False
        token.rotated_at = at
        return True

    async def delete_expired(self, now: datetime, limit: int, *, dry_run: bool = False) -> int:
        expired = [t.id for t in self.store.tokens.values() if t.expires_at < now]
        if dry_run:
            return len(expired)
        for tid in expired[:limit]:
            del self.store.tokens[tid]
        return len(expired[:limit])


class FakeEmailTokenRepository(EmailTokenRepository):
    def __init__(self, store: Store) -> None:
        self.store = store

    async def issue(self, token: EmailToken) -> None:
        self.store.email_tokens[token.id] = copy.copy(token)

    async def supersede(self, token: EmailToken, at: datetime) -> int:
        ended = 0
        for other in self.store.email_tokens.values():
            if (
                other.user_id == token.user_id
                and other.purpose is token.purpose
                and other.used_at is None
                and other.created_at <= token.created_at
                and other.id != token.id
            ):
                other.used_at = at
                ended += 1
        return ended

    async def find_usable(
        self, token_id: str, purpose: Purpose, now: datetime
    ) -> EmailToken | None:
        token = self.store.email_tokens.get(token_id)
        if token is None or token.purpose is not purpose or not token.is_usable(now):
            return None
        return copy.copy(token)

    async def redeem(self, token_id: str, purpose: Purpose, now: datetime) -> EmailToken | None:
        found = await self.find_usable(token_id, purpose, now)
        if found is not None:
            # Like the adapter's UPDATE ... RETURNING: the token as it is once used.
            self.store.email_tokens[token_id].used_at = found.used_at = now
        return found

    async def end_all(self, user_id: int, purpose: Purpose | None, at: datetime) -> int:
        ended = 0
        for token in self.store.email_tokens.values():
            if (
                token.user_id == user_id
                and purpose in (None, token.purpose)
                and token.used_at is None
            ):
                token.used_at = at
                ended += 1
        return ended

    async def delete_spent(self, before: datetime, limit: int) -> int:
        spent = [
            t.id
            for t in self.store.email_tokens.values()
            if (t.used_at is not None and t.used_at < before) or t.expires_at < before
        ][:limit]
        for token_id in spent:
            del self.store.email_tokens[token_id]
        return len(spent)


class FakeSecondFactorRepository(SecondFactorRepository):
    """TOTP factors by user id; recovery codes as ``[user_id, code_hash, used_at]``."""

    def __init__(self, store: Store) -> None:
        self.totp: dict[int, TotpFactor] = store.table("totp_factors")
        self.codes: dict[tuple[int, str], datetime | None] = store.table("recovery_codes")
        self.passkeys: dict[str, Passkey] = store.table("passkeys")

    async def hold(self, user_id: int) -> None:
        """Nothing to do: a fake unit of work runs alone."""

    async def status(self, user_id: int) -> MfaStatus:
        factor = self.totp.get(user_id)
        left = sum(1 for (uid, _), used in self.codes.items() if uid == user_id and used is None)
        keys = sum(1 for p in self.passkeys.values() if p.user_id == user_id)
        return MfaStatus(
            totp=factor is not None and factor.enabled, passkeys=keys, recovery_codes_left=left
        )

    async def get_totp(self, user_id: int) -> TotpFactor | None:
        return self.totp.get(user_id)

    async def set_pending_totp(self, user_id: int, sealed_secret: bytes, at: datetime) -> bool:
        found = self.totp.get(user_id)
        if found is not None and found.enabled:
            return False
        self.totp[user_id] = TotpFactor(user_id=user_id, sealed_secret=sealed_secret, created_at=at)
        return True

    async def enable_totp(
        self, user_id: int, sealed_secret: bytes, step: int, at: datetime
    ) -> bool:
        found = self.totp.get(user_id)
        if found is None or found.enabled or found.sealed_secret != sealed_secret:
            return False
        self.totp[user_id] = replace(found, enabled_at=at, last_step=step)
        return True

    async def use_totp_step(self, user_id: int, step: int) -> bool:
        found = self.totp.get(user_id)
        if found is None or not found.enabled:
            return False
        if found.last_step is not None and found.last_step >= step:
            return False
        self.totp[user_id] = replace(found, last_step=step)
        return True

    async def disable_totp(self, user_id: int) -> bool:
        found = self.totp.pop(user_id, None)
        return found is not None and found.enabled

    async def replace_recovery_codes(
        self, user_id: int, code_hashes: list[str], at: datetime
    ) -> None:
        await self.delete_recovery_codes(user_id)
        for code_hash in code_hashes:
            self.codes[(user_id, code_hash)] = None

    async def use_recovery_code(self, user_id: int, code_hash: str, at: datetime) -> bool:
        key = (user_id, code_hash)
        if key not in self.codes or self.codes[key] is not None:
            return False
        self.codes[key] = at
        return True

    async def delete_recovery_codes(self, user_id: int) -> None:
        for key in [key for key in self.codes if key[0] == user_id]:
            del self.codes[key]


class FakeMfaTokenRepository(MfaTokenRepository):
    def __init__(self, store: Store) -> None:
        self.tokens: dict[str, MfaToken] = store.table("mfa_tokens")

    async def add(self, token: MfaToken) -> None:
        self.tokens[token.id] = copy.copy(token)

    async def find_usable(self, token_id: str, now: datetime) -> MfaToken | None:
        token = self.tokens.get(token_id)
        if (
            token is None
            or token.used_at is not None
            or token.expires_at <= now
            or token.failures >= MAX_FAILURES
        ):
            return None
        return copy.copy(token)

    async def redeem(self, token_id: str, now: datetime) -> MfaToken | None:
        found = await self.find_usable(token_id, now)
        if found is not None:
            self.tokens[token_id].used_at = found.used_at = now
        return found

    async def fail(self, token_id: str) -> None:
        token = self.tokens.get(token_id)
        if token is not None and token.used_at is None:
            token.failures += 1

    async def end_all(self, user_id: int, at: datetime) -> int:
        ended = [t for t in self.tokens.values() if t.user_id == user_id and t.used_at is None]
        for token in ended:
            token.used_at = at
        return len(ended)

    async def delete_spent(self, before: datetime, limit: int) -> int:
        spent = [
            t.id
            for t in self.tokens.values()
            if (t.used_at is not None and t.used_at < before) or t.expires_at < before
        ][:limit]
        for token_id in spent:
            del self.tokens[token_id]
        return len(spent)


class FakePasskeyRepository(PasskeyRepository):
    def __init__(self, store: Store) -> None:
        self.passkeys: dict[str, Passkey] = store.table("passkeys")

    async def add(self, passkey: Passkey) -> None:
        if any(p.credential_id == passkey.credential_id for p in self.passkeys.values()):
            raise PasskeyAlreadyRegistered()
        self.passkeys[passkey.id] = copy.copy(passkey)

    async def list_for_user(self, user_id: int) -> list[Passkey]:
        mine = [copy.copy(p) for p in self.passkeys.values() if p.user_id == user_id]
        return sorted(mine, key=lambda p: (p.created_at, p.id))

    async def get(self, passkey_id: str, user_id: int) -> Passkey | None:
        found = self.passkeys.get(passkey_id)
        return copy.copy(found) if found is not None and found.user_id == user_id else None

    async def get_by_credential(self, credential_id: bytes) -> Passkey | None:
        for passkey in self.passkeys.values():
            if passkey.credential_id == credential_id:
                return copy.copy(passkey)
        return None

    async def rename(self, passkey_id: str, user_id: int, name: str) -> Passkey | None:
        found = await self.get(passkey_id, user_id)
        if found is None:
            return None
        self.passkeys[passkey_id].name = found.name = name
        return found

    async def delete(self, passkey_id: str, user_id: int) -> bool:
        if await self.get(passkey_id, user_id) is None:
            return False
        del self.passkeys[passkey_id]
        return True

    async def delete_all(self, user_id: int) -> int:
        mine = [key for key, p in self.passkeys.items() if p.user_id == user_id]
        for key in mine:
            del self.passkeys[key]
        return len(mine)

    async def record_use(self, passkey: Passkey, assertion: Assertion, at: datetime) -> bool:
        stored = self.passkeys.get(passkey.id)
        if stored is None or stored.sign_count != passkey.sign_count:
            return False
        stored.sign_count = assertion.sign_count
        stored.backed_up = assertion.backed_up
        stored.last_used_at = at
        return True


class FakeAccessTokenRepository(AccessTokenRepository):
    def __init__(self, store: Store) -> None:
        self.users = store.users
        self.tokens: dict[str, AccessToken] = store.table("access_tokens")

    def _live(self, token: AccessToken, now: datetime) -> bool:
        owner = self.users.get(token.user_id)
        return (
            owner is not None
            and token.expires_at > now
            and token.token_version == owner.token_version
        )

    async def add(self, token: AccessToken, limit: int) -> bool:
        if token.user_id not in self.users:
            raise InvalidToken()  # as the foreign key refuses it
        live = [
            t
            for t in self.tokens.values()
            if t.user_id == token.user_id
            and t.token_version == token.token_version
            and t.expires_at > token.created_at
        ]
        if len(live) >= limit:
            return False
        self.tokens[token.id] = copy.copy(token)
        return True

    async def list_live(self, user_id: int, now: datetime) -> list[AccessToken]:
        mine = [
            copy.copy(t)
            for t in self.tokens.values()
            if t.user_id == user_id and self._live(t, now)
        ]
        return sorted(mine, key=lambda t: (-t.created_at.timestamp(), t.id))

    async def get_with_owner(self, token_hash: str) -> tuple[AccessToken, User] | None:
        for token in self.tokens.values():
            owner = self.users.get(token.user_id)
            if token.token_hash == token_hash and owner is not None:
                return copy.copy(token), copy.copy(owner)
        return None

    async def record_use(self, token_id: str, at: datetime) -> None:
        token = self.tokens.get(token_id)
        if token is not None and (token.last_used_at is None or token.last_used_at < at):
            token.last_used_at = at

    async def delete(self, token_id: str, user_id: int) -> AccessToken | None:
        token = self.tokens.get(token_id)
        if token is None or token.user_id != user_id:
            return None
        return self.tokens.pop(token_id)

    async def delete_spent(self, now: datetime, limit: int) -> int:
        spent = [key for key, t in self.tokens.items() if not self._live(t, now)][:limit]
        for key in spent:
            del self.tokens[key]
        return len(spent)


class FakeOrgRepository(OrgRepository):
    """Organizations, members by (org id, user id); the counters as a sequence would."""

    def __init__(self, store: Store) -> None:
        self.users = store.users
        self.orgs: dict[int, Org] = store.table("orgs")
        self.members_: dict[tuple[int, int], Member] = store.table("org_members")
        self.invitations: dict[str, Invitation] = store.table("org_invitations")
        self.sequence: dict[str, int] = store.table("org_ids")

    def _membership(self, org: Org | None, user_id: int) -> Membership | None:
        if org is None or org.id is None:
            return None
        member = self.members_.get((org.id, user_id))
        if member is None:
            return None
        return Membership(org=copy.copy(org), user_id=user_id, role=member.role)

    def _member(self, org_id: int, user_id: int, role: Role, at: datetime) -> Member:
        user = self.users[user_id]
        return Member(user_id, user.username, user.full_name, role, at)

    async def create(self, org: Org, owner: int, limit: int) -> Org | None:
        if any(o.slug == org.slug for o in self.orgs.values()):
            raise SlugTaken()
        if sum(o.created_by == org.created_by for o in self.orgs.values()) >= limit:
            return None
        stored = copy.copy(org)
        stored.id = self.sequence["last"] = self.sequence.get("last", 0) + 1
        self.orgs[stored.id] = stored
        self.members_[(stored.id, owner)] = self._member(
            stored.id, owner, Role.OWNER, org.created_at
        )
        return copy.copy(stored)

    async def membership(self, slug: str, user_id: int) -> Membership | None:
        found = next((o for o in self.orgs.values() if o.slug == slug), None)
        return self._membership(found, user_id)

    async def membership_by_id(self, org_id: int, user_id: int) -> Membership | None:
        return self._membership(self.orgs.get(org_id), user_id)

    async def list_for_user(self, user_id: int, page: PageRequest) -> Page[Membership]:
        mine = [
            m
            for o in sorted(self.orgs.values(), key=lambda o: o.slug)
            if (m := self._membership(o, user_id)) is not None
        ]
        items = mine[page.offset : page.offset + page.size]
        return Page(items=items, total=len(mine), page=page.page, size=page.size)

    async def rename(self, org_id: int, name: str) -> Org | None:
        org = self.orgs.get(org_id)
        if org is None:
            return None
        org.name = name
        return copy.copy(org)

    async def delete(self, org_id: int) -> bool:
        if self.orgs.pop(org_id, None) is None:
            return False
        for member in [k for k in self.members_ if k[0] == org_id]:
            del self.members_[member]
        for invitation in [k for k, i in self.invitations.items() if i.org_id == org_id]:
            del self.invitations[invitation]
        return True

    async def hold(self, org_id: int) -> bool:
        return org_id in self.orgs

    async def members(self, org_id: int, page: PageRequest) -> Page[Member]:
        found = sorted(
            (self._fresh(m) for (o, _), m in self.members_.items() if o == org_id),
            key=lambda m: m.user_id,
        )
        items = found[page.offset : page.offset + page.size]
        return Page(items=items, total=len(found), page=page.page, size=page.size)

    def _fresh(self, member: Member) -> Member:
        # Names as the users' rows say now, as the adapter's join reads them.
        user = self.users[member.user_id]
        return replace(member, username=user.username, full_name=user.full_name)

    async def member(self, org_id: int, user_id: int) -> Member | None:
        found = self.members_.get((org_id, user_id))
        return self._fresh(found) if found is not None else None

    async def role_of(self, org_id: int, user_id: int) -> Role | None:
        found = self.members_.get((org_id, user_id))
        return found.role if found is not None else None

    async def add_member(self, org_id: int, user_id: int, role: Role, at: datetime) -> bool:
        if (org_id, user_id) in self.members_:
            return False
        self.members_[(org_id, user_id)] = self._member(org_id, user_id, role, at)
        return True

    def _keeps_an_owner(self, org_id: int, user_id: int) -> bool:
        member = self.members_[(org_id, user_id)]
        return member.role is not Role.OWNER or any(
            m.role is Role.OWNER
            for (o, u), m in self.members_.items()
            if o == org_id and u != user_id
        )

    async def set_role(self, org_id: int, user_id: int, role: Role) -> bool:
        if (org_id, user_id) not in self.members_:
            return False
        if role is not Role.OWNER and not self._keeps_an_owner(org_id, user_id):
            return False
        self.members_[(org_id, user_id)] = replace(self.members_[(org_id, user_id)], role=role)
        return True

    async def remove_member(self, org_id: int, user_id: int) -> bool:
        if (org_id, user_id) not in self.members_ or not self._keeps_an_owner(org_id, user_id):
            return False
        del self.members_[(org_id, user_id)]
        return True

    async def is_member_by_email(self, org_id: int, email: str) -> bool:
        return any(
            o == org_id and canonical(self.users[u].email) == canonical(email)
            for (o, u) in self.members_
        )

    async def release_user(self, user_id: int) -> bool:
        theirs = [o for (o, u) in self.members_ if u == user_id]
        others = {
            o: [m for (x, u), m in self.members_.items() if x == o and u != user_id] for o in theirs
        }
        for org_id in theirs:
            role = self.members_[(org_id, user_id)].role
            rest = others[org_id]
            if role is Role.OWNER and rest and not any(m.role is Role.OWNER for m in rest):
                return False
        for org_id in theirs:
            if not others[org_id]:
                await self.delete(org_id)
        return True


class FakeInvitationRepository(InvitationRepository):
    def __init__(self, store: Store) -> None:
        self.invitations: dict[str, Invitation] = store.table("org_invitations")

    @staticmethod
    def _pending(invitation: Invitation, now: datetime) -> bool:
        return invitation.accepted_at is None and invitation.expires_at > now

    async def replace(self, invitation: Invitation) -> None:
        for key, found in list(self.invitations.items()):
            if found.org_id == invitation.org_id and canonical(found.email) == canonical(
                invitation.email
            ):
                del self.invitations[key]
        self.invitations[invitation.id] = copy.copy(invitation)

    async def pending(self, org_id: int, now: datetime) -> list[Invitation]:
        found = [
            copy.copy(i)
            for i in self.invitations.values()
            if i.org_id == org_id and self._pending(i, now)
        ]
        return sorted(found, key=lambda i: (-i.created_at.timestamp(), i.id))

    async def get(self, invitation_id: str) -> Invitation | None:
        found = self.invitations.get(invitation_id)
        return copy.copy(found) if found is not None else None

    async def revoke(self, org_id: int, invitation_id: str) -> bool:
        found = self.invitations.get(invitation_id)
        if found is None or found.org_id != org_id or found.accepted_at is not None:
            return False
        del self.invitations[invitation_id]
        return True

    async def set_token(self, invitation_id: str, token_hash: str, now: datetime) -> bool:
        found = self.invitations.get(invitation_id)
        if found is None or not self._pending(found, now):
            return False
        found.token_hash = token_hash
        return True

    async def org_of(self, token_hash: str) -> int | None:
        found = [i.org_id for i in self.invitations.values() if i.token_hash == token_hash]
        return found[0] if found else None

    async def redeem(self, token_hash: str, now: datetime) -> Invitation | None:
        for found in self.invitations.values():
            if found.token_hash == token_hash and self._pending(found, now):
                found.accepted_at = now
                return copy.copy(found)
        return None

    async def delete_spent(self, now: datetime, limit: int) -> int:
        spent = [k for k, i in self.invitations.items() if not self._pending(i, now)][:limit]
        for key in spent:
            del self.invitations[key]
        return len(spent)


class FakeChallengeRepository(ChallengeRepository):
    def __init__(self, store: Store) -> None:
        self.challenges: dict[str, Challenge] = store.table("webauthn_challenges")

    async def add(self, challenge: Challenge) -> None:
        self.challenges[challenge.id] = copy.copy(challenge)

    async def redeem(
        self, challenge_id: str, ceremony: Ceremony, now: datetime
    ) -> Challenge | None:
        found = self.challenges.get(challenge_id)
        if (
            found is None
            or found.ceremony is not ceremony
            or found.used_at is not None
            or found.expires_at <= now
        ):
            return None
        found.used_at = now
        return copy.copy(found)

    async def delete_spent(self, before: datetime, limit: int) -> int:
        spent = [
            c.id
            for c in self.challenges.values()
            if (c.used_at is not None and c.used_at < before) or c.expires_at < before
        ][:limit]
        for challenge_id in spent:
            del self.challenges[challenge_id]
        return len(spent)


class FakeOutboxRepository(OutboxRepository):
    # The SQL column's length: a longer error is cut, as the adapter cuts it.
    ERROR_MAX_LENGTH = 500

    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(self, message: OutboxMessage) -> None:
        self.store.outbox[message.id] = copy.deepcopy(message)

    async def claim(
        self, now: datetime, *, lease_until: datetime, claim: str, limit: int
    ) -> list[OutboxMessage]:
        due = sorted(
            (
                m
                for m in self.store.outbox.values()
                if m.status is Status.PENDING and m.next_attempt_at <= now
            ),
            key=lambda m: (m.next_attempt_at, m.created_at, m.id),
        )[:limit]
        for message in due:
            message.claim = claim
            message.attempts += 1
            message.next_attempt_at = lease_until
        return [copy.deepcopy(m) for m in sorted(due, key=lambda m: (m.created_at, m.id))]

    def _held(self, message_id: str, claim: str) -> OutboxMessage | None:
        message = self.store.outbox.get(message_id)
        if message is None or message.claim != claim or message.status is not Status.PENDING:
            return None
        return message

    async def mark_sent(self, message_id: str, claim: str, at: datetime) -> bool:
        message = self._held(message_id, claim)
        if message is None:
            return False
        message.status, message.sent_at, message.claim, message.last_error = (
            Status.SENT,
            at,
            None,
            None,
        )
        return True

    async def mark_failed(
        self, message_id: str, claim: str, error: str, retry_at: datetime | None
    ) -> bool:
        message = self._held(message_id, claim)
        if message is None:
            return False
        message.claim, message.last_error = None, error[: self.ERROR_MAX_LENGTH]
        if retry_at is None:
            message.status = Status.DEAD
        else:
            message.next_attempt_at = retry_at
        return True

    async def get(self, message_id: str) -> OutboxMessage | None:
        message = self.store.outbox.get(message_id)
        return copy.deepcopy(message) if message else None

    async def recent(self, status: Status | None, limit: int) -> list[OutboxMessage]:
        found = [m for m in self.store.outbox.values() if status is None or m.status is status]
        found.sort(key=lambda m: (m.created_at, m.id), reverse=True)
        return [copy.deepcopy(m) for m in found[:limit]]

    async def retry(self, message_ids: list[str] | None, now: datetime) -> int:
        revived = 0
        for message in self.store.outbox.values():
            if message.status is Status.DEAD and (message_ids is None or message.id in message_ids):
                message.status, message.attempts, message.next_attempt_at = (Status.PENDING, 0, now)
                message.last_error = message.claim = None
                revived += 1
        return revived

    async def delete_sent(self, before: datetime, limit: int) -> int:
        sent = [
            m.id
            for m in self.store.outbox.values()
            if m.status is Status.SENT and m.sent_at is not None and m.sent_at < before
        ][:limit]
        for message_id in sent:
            del self.store.outbox[message_id]
        return len(sent)

    async def stats(self) -> OutboxStats:
        pending = [m for m in self.store.outbox.values() if m.status is Status.PENDING]
        dead = sum(1 for m in self.store.outbox.values() if m.status is Status.DEAD)
        oldest = min((m.created_at for m in pending), default=None)
        return OutboxStats(pending=len(pending), dead=dead, oldest_pending_at=oldest)


class FakeAuditLog(AuditLog):
    def __init__(self, store: Store) -> None:
        self.store = store
        # The last id given out: like the table's sequence, never reused after a delete.
        self.sequence: dict[str, int] = store.table("audit_event_ids")

    async def add(self, event: AuditEvent) -> None:
        # The stored event gets the id; the caller's is left as it was, as the adapter does.
        stored = copy.deepcopy(event)
        stored.id = self.sequence["last"] = self.sequence.get("last", 0) + 1
        self.store.audit.append(stored)

    async def page(self, where: AuditFilter, page: PageRequest) -> tuple[list[AuditEvent], int]:
        found = [
            e
            for e in reversed(self.store.audit)
            if where.action in (None, e.action)
            and where.actor_id in (None, e.actor_id)
            and where.target_user_id in (None, e.target_user_id)
            and where.org_id in (None, e.org_id)
        ]
        return found[page.offset : page.offset + page.size], len(found)

    async def delete_before(self, before: datetime, limit: int) -> int:
        old = [e for e in self.store.audit if e.occurred_at < before][:limit]
        self.store.audit = [e for e in self.store.audit if e not in old]
        return len(old)


class FakeSigningKeyRepository(SigningKeyRepository):
    """Keys by kid, with the storage's one rule: one unretired "first key" per
    algorithm."""

    def __init__(self, store: Store) -> None:
        self.keys: dict[str, SigningKey] = store.table("signing_keys")
        self.first_of: dict[str, str] = store.table("signing_key_firsts")  # algorithm -> kid

    async def list_all(self) -> list[SigningKey]:
        return in_order(self.keys.values())

    async def add(self, key: SigningKey) -> None:
        assert key.kid not in self.keys
        self.keys[key.kid] = key

    async def add_first(self, key: SigningKey) -> bool:
        if key.algorithm in self.first_of:
            return False
        await self.add(key)
        self.first_of[key.algorithm] = key.kid
        return True

    def _forget_first(self, kid: str) -> None:
        for algorithm in [a for a, first in self.first_of.items() if first == kid]:
            del self.first_of[algorithm]

    async def retire(self, retirement: Retirement) -> bool:
        key = self.keys.get(retirement.kid)
        if key is None or key.retired_at is not None:
            return False
        self.keys[key.kid] = replace(
            key, retired_at=retirement.at, delete_after=retirement.delete_after
        )
        self._forget_first(key.kid)
        return True

    async def delete_expired(self, now: datetime) -> int:
        doomed = [
            kid
            for kid, key in self.keys.items()
            if key.delete_after is not None and key.delete_after <= now
        ]
        for kid in doomed:
            del self.keys[kid]
        return len(doomed)

    async def delete(self, kid: str) -> bool:
        if self.keys.pop(kid, None) is None:
            return False
        self._forget_first(kid)
        return True


# A fake repository is made on the unit of work's copy of the store.
FakeFactory = Callable[[Store], object]

# Which fake stands in for each repository port: the twin of adapters/repositories.py.
FAKES: Mapping[type, FakeFactory] = {
    UserRepository: FakeUserRepository,
    SessionRepository: FakeSessionRepository,
    RefreshTokenRepository: FakeRefreshTokenRepository,
    EmailTokenRepository: FakeEmailTokenRepository,
    OutboxRepository: FakeOutboxRepository,
    AuditLog: FakeAuditLog,
    SigningKeyRepository: FakeSigningKeyRepository,
    SecondFactorRepository: FakeSecondFactorRepository,
    MfaTokenRepository: FakeMfaTokenRepository,
    PasskeyRepository: FakePasskeyRepository,
    ChallengeRepository: FakeChallengeRepository,
    AccessTokenRepository: FakeAccessTokenRepository,
    OrgRepository: FakeOrgRepository,
    InvitationRepository: FakeInvitationRepository,
}


class FakeUnitOfWork(UnitOfWork):
    """Works on a deep copy of ``store``; ``commit()`` publishes it.

    ``repositories`` adds the fakes of other ports (a new resource's), as classes (or
    any callable) taking the store: ``{NoteRepository: FakeNoteRepository}``. Like the
    project's own, they keep their rows in the unit of work's copy (``store.table``),
    so what a unit of work does not commit, no later one sees."""

    def __init__(
        self, store: Store | None = None, repositories: Mapping[type, FakeFactory] | None = None
    ) -> None:
        self.store = store or Store()
        self.commits = 0
        self.entered = 0
        self.fakes = {**FAKES, **(repositories or {})}
        self._open: dict[type, object] = {}

    def repository(self, port: type[R]) -> R:
        found = self._open.get(port)
        if found is None:
            make = self.fakes.get(port)
            if make is None:
                raise LookupError(f"no fake for {port.__name__}: pass it in `repositories`")
            found = self._open[port] = make(self._work)
        return found  # type: ignore[return-value]

    @property
    def committed(self) -> bool:
        return self.commits > 0

    async def __aenter__(self) -> FakeUnitOfWork:
        self.entered += 1
        self._start()
        return self

    def _start(self) -> None:
        self._work = copy.deepcopy(self.store)
        self._open = {}

    async def commit(self) -> None:
        self.store.__dict__.update(copy.deepcopy(self._work).__dict__)
        self.commits += 1

    async def rollback(self) -> None:
        self._start()


class FakeHasher(PasswordHasher):
    """Reversible "hashes"; counts every call. Hashes starting with ``old$`` need a rehash."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def hash(self, password: str) -> str:
        self.calls.append("hash")
        return f"new${password}"

    async def verify(self, password_hash: str | None, password: str) -> bool:
        self.calls.append("verify")
        if password_hash is None:
            return False
        return password_hash.split("$", 1)[1] == password

    def needs_rehash(self, password_hash: str) -> bool:
        return password_hash.startswith("old$")


class FakeClock(Clock):
    def __init__(self, now: datetime | None = None) -> None:
        self.current = now or datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


class FakeFailedLoginCounter(FailedLoginCounter):
    def __init__(self, limit: int = 3) -> None:
        self.limit = limit
        self.failures: dict[str, int] = {}

    async def acquire(self, account: str) -> int | None:
        if self.failures.get(account, 0) >= self.limit:
            return 60
        self.failures[account] = self.failures.get(account, 0) + 1
        return None

    async def succeeded(self, account: str) -> None:
        self.failures.pop(account, None)


class FakeRateLimits(RateLimits):
    """Named limits as plain counts (no window): ``limits`` maps a name to how many hits
    a key may make; ``unavailable`` makes every hit fail as an unreachable store does."""

    def __init__(self, limits: dict[str, int] | None = None) -> None:
        self.limits = dict(limits or {})
        self.hits: dict[tuple[str, str], int] = {}
        self.unavailable = False

    def names(self) -> frozenset[str]:
        return frozenset(self.limits)

    async def hit(self, name: str, key: str) -> int | None:
        if self.unavailable:
            raise LimitsUnavailable()
        count = self.hits.get((name, key), 0)
        if count >= self.limits.get(name, 1_000_000):
            return 60
        self.hits[(name, key)] = count + 1
        return None


SECRET_KEY = "unit-test-signing-key-0123456789abcdef-0123456789abcdef-01234567"
# Property tests check logic, not speed: a loaded CI machine must not make them flaky.
RELAXED = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

POLICY = TokenPolicy(access_ttl=timedelta(minutes=30), refresh_ttl=timedelta(days=7))


def make_user(**fields: object) -> User:
    base = User(
        email="ada@example.com",
        username="ada",
        password_hash="new$correct horse battery",
        created_at=datetime(2029, 1, 1, tzinfo=UTC),
    )
    return replace(base, **fields)  # type: ignore[arg-type]


class FakeMailTransport(MailTransport):
    """Keeps every message it is given; ``fail_with`` makes each send fail so."""

    def __init__(self) -> None:
        self.sent: list[Mail] = []
        self.fail_with: str | None = None

    async def send(self, mail: Mail) -> None:
        if self.fail_with is not None:
            raise MailNotSent(self.fail_with)
        self.sent.append(mail)


class FakeMailTemplates(MailTemplates):
    """Renders every value of the context into all three parts."""

    def render(self, template: str, context: Mapping[str, Any]) -> RenderedMail:
        values = " ".join(f"{k}={v}" for k, v in sorted(context.items()))
        return RenderedMail(subject=template, text=values, html=f"<p>{values}</p>")


def session_of(principal: Principal) -> str:
    """The session of a principal that came from a login (not from a personal access
    token)."""
    assert principal.session_id is not None, "a personal access token has no session"
    return principal.session_id
