"""Passkeys (WebAuthn Level 3): discoverable credentials that log a user in alone, or
serve as the second step of a password login.

What the server keeps of a passkey is its public key and signature counter; of a
ceremony, its challenge, single use and short-lived, stored so that any replica can
check it. The cryptography of the ceremonies is the ``WebAuthn`` port's.
"""

from __future__ import annotations

import abc
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from domain.model import new_id

CHALLENGE_BYTES = 32
CHALLENGE_TTL = timedelta(minutes=5)
# A user handle: random bytes, never the user's id, email or username (WebAuthn, 14.6.1).
USER_HANDLE_BYTES = 32
NAME_MAX_LENGTH = 64
DEFAULT_NAME = "Passkey"
# A few well-known authenticators by AAGUID, for a passkey's default name.
KNOWN_AUTHENTICATORS = {
    "fbfc3007-154e-4ecc-8c0b-6e020557d7bd": "iCloud Keychain",
    "dd4ec289-e01d-41c9-bb89-70fa845d4bf2": "iCloud Keychain",
    "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4": "Google Password Manager",
    "adce0002-35bc-c60a-648b-0b25f1f05503": "Chrome on Mac",
    "08987058-cadc-4b81-b6e1-30de50dcbe96": "Windows Hello",
    "9ddd1817-af5a-4672-a2b9-3e3dd95000a9": "Windows Hello",
    "6028b017-b1d4-4c02-b4b3-afcdafc96bb2": "Windows Hello",
    "bada5566-a7aa-401f-bd96-45619a55120d": "1Password",
    "d548826e-79b4-db40-a3d8-11116f7e8349": "Bitwarden",
    "cb69481e-8ff7-4039-93ec-0a2729a154a8": "YubiKey 5",
    "ee882879-721c-4913-9775-3dfcce97072a": "YubiKey 5",
}


class Ceremony(StrEnum):
    REGISTRATION = "registration"
    AUTHENTICATION = "authentication"


def default_name(aaguid: str | None) -> str:
    return KNOWN_AUTHENTICATORS.get((aaguid or "").lower(), DEFAULT_NAME)


@dataclass(eq=False)
class Passkey:
    user_id: int
    credential_id: bytes
    public_key: bytes  # COSE_Key
    sign_count: int
    name: str
    user_handle: bytes
    created_at: datetime
    backed_up: bool = False
    aaguid: str | None = None
    last_used_at: datetime | None = None
    id: str = field(default_factory=new_id)


@dataclass(eq=False)
class Challenge:
    """One ceremony's challenge. ``user_id``: whose ceremony it is (None for a
    passwordless login, where the passkey names its user)."""

    ceremony: Ceremony
    challenge: bytes
    created_at: datetime
    expires_at: datetime
    user_id: int | None = None
    # A registration's: the user handle its options gave the authenticator.
    user_handle: bytes | None = None
    used_at: datetime | None = None
    id: str = field(default_factory=new_id)

    @classmethod
    def issue(
        cls,
        ceremony: Ceremony,
        now: datetime,
        user_id: int | None = None,
        user_handle: bytes | None = None,
    ) -> Challenge:
        return cls(
            ceremony=ceremony,
            challenge=secrets.token_bytes(CHALLENGE_BYTES),
            created_at=now,
            expires_at=now + CHALLENGE_TTL,
            user_id=user_id,
            user_handle=user_handle,
        )


def new_user_handle() -> bytes:
    return secrets.token_bytes(USER_HANDLE_BYTES)


@dataclass(frozen=True)
class NewCredential:
    """What a verified registration tells of the new credential."""

    credential_id: bytes
    public_key: bytes
    sign_count: int
    aaguid: str | None
    backed_up: bool


@dataclass(frozen=True)
class Assertion:
    """What a verified authentication tells: the counter now, and the backup state."""

    sign_count: int
    backed_up: bool


# A credential as the browser's ``PublicKeyCredential.toJSON()`` gives it.
CredentialJson = dict[str, Any]


class WebAuthn(abc.ABC):
    """The ceremonies of the relying party (origins and RP id from the settings). Every
    check that fails raises ``InvalidPasskey``."""

    @abc.abstractmethod
    def registration_options(
        self,
        challenge: bytes,
        user_handle: bytes,
        user_name: str,
        display_name: str,
        exclude: list[bytes],
    ) -> dict[str, Any]:
        """``PublicKeyCredentialCreationOptions`` in their JSON form."""

    @abc.abstractmethod
    def verify_registration(self, credential: CredentialJson, challenge: bytes) -> NewCredential:
        """Check a registration: challenge, origin, RP id, user presence and
        verification, and the attestation (``none``)."""

    @abc.abstractmethod
    def authentication_options(self, challenge: bytes, allow: list[bytes]) -> dict[str, Any]:
        """``PublicKeyCredentialRequestOptions`` in their JSON form (``allow`` empty:
        any discoverable passkey of this site)."""

    @abc.abstractmethod
    def credential_id(self, credential: CredentialJson) -> bytes | None:
        """The credential id an assertion names; None when it names none."""

    @abc.abstractmethod
    def verify_authentication(
        self, credential: CredentialJson, challenge: bytes, passkey: Passkey
    ) -> Assertion:
        """Check an assertion by ``passkey``: challenge, origin, RP id hash, user
        presence and verification, the signature, and a counter that grows."""


class PasskeyRepository(abc.ABC):
    @abc.abstractmethod
    async def add(self, passkey: Passkey) -> None:
        """Store a new passkey. Raises ``PasskeyAlreadyRegistered`` when its credential
        id is registered already (the unique index decides)."""

    @abc.abstractmethod
    async def list_for_user(self, user_id: int) -> list[Passkey]:
        """The user's passkeys, oldest first."""

    @abc.abstractmethod
    async def get(self, passkey_id: str, user_id: int) -> Passkey | None:
        """The user's passkey with this id."""

    @abc.abstractmethod
    async def get_by_credential(self, credential_id: bytes) -> Passkey | None:
        """The passkey of this credential id, whoever's it is."""

    @abc.abstractmethod
    async def rename(self, passkey_id: str, user_id: int, name: str) -> Passkey | None:
        """Rename the user's passkey; the passkey as it is now, or None."""

    @abc.abstractmethod
    async def delete(self, passkey_id: str, user_id: int) -> bool:
        """Remove the user's passkey; whether it was there."""

    @abc.abstractmethod
    async def delete_all(self, user_id: int) -> int:
        """Remove every passkey of the user; how many."""

    @abc.abstractmethod
    async def record_use(self, passkey: Passkey, assertion: Assertion, at: datetime) -> bool:
        """Store the counter and backup state of an assertion, only while the stored
        counter is still the one it was checked against (of two assertions checked
        at once, one wins). Whether it was stored."""


class ChallengeRepository(abc.ABC):
    @abc.abstractmethod
    async def add(self, challenge: Challenge) -> None:
        """Store a newly issued challenge."""

    @abc.abstractmethod
    async def redeem(
        self, challenge_id: str, ceremony: Ceremony, now: datetime
    ) -> Challenge | None:
        """Use the challenge up, in one conditional statement: of concurrent redemptions
        one gets it; unknown, used, expired and other ceremonies' give None."""

    @abc.abstractmethod
    async def delete_spent(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` challenges used or expired before ``before``."""
