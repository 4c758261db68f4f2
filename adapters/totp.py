"""TOTP with pyotp (RFC 6238: SHA-1, 6 digits, 30-second steps), its secrets sealed
under SECRET_KEY (``adapters.sealing``) and bound to their user."""

from __future__ import annotations

import hmac
from datetime import datetime

import pyotp

from adapters.sealing import Sealer, Unsealable
from domain.mfa import NewTotpSecret, TotpCodes, TotpFactor

HKDF_INFO = b"AES-256-GCM key sealing TOTP secrets, v1"
SECRET_LENGTH = 32  # base32 characters: 160 bits, RFC 4226's recommendation
DIGITS = 6
# The current step and one either side: a phone's clock a little off still works.
WINDOW = 1


class PyotpCodes(TotpCodes):
    def __init__(self, secret_key: str) -> None:
        self._sealer = Sealer(secret_key, HKDF_INFO)

    def new_secret(self, user_id: int) -> NewTotpSecret:
        secret = pyotp.random_base32(SECRET_LENGTH)
        return NewTotpSecret(
            secret=secret, sealed=self._sealer.seal(_owner(user_id), secret.encode())
        )

    def uri(self, secret: str, account: str, issuer: str) -> str:
        return pyotp.TOTP(secret, digits=DIGITS).provisioning_uri(name=account, issuer_name=issuer)

    def matching_step(self, factor: TotpFactor, code: str, now: datetime) -> int | None:
        if len(code) != DIGITS or not code.isascii() or not code.isdigit():
            return None
        try:
            secret = self._sealer.open(_owner(factor.user_id), factor.sealed_secret).decode()
        except Unsealable:
            # Sealed under another SECRET_KEY (or for another user): no code matches.
            return None
        totp = pyotp.TOTP(secret, digits=DIGITS)
        current = totp.timecode(now)
        # Newest first: of two steps with the same code, the later one is used up.
        for step in range(current + WINDOW, current - WINDOW - 1, -1):
            if hmac.compare_digest(totp.generate_otp(step), code):
                return step
        return None


def _owner(user_id: int) -> bytes:
    return f"user:{user_id}".encode()
