"""Secrets sealed at rest under SECRET_KEY (``cryptography``): the private parts of
signing keys, TOTP secrets.

A sealed value is ``version || nonce || AES-256-GCM(plaintext)``, under a key derived
from SECRET_KEY with HKDF-SHA256 for one purpose only, and with associated data naming
what it belongs to (a kid, a user): a blob copied onto another row does not open.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# Fixed for good (changed, nothing sealed so far would open; it predates the other
# purposes); each purpose's HKDF info gives it a key unrelated to the others.
HKDF_SALT = b"backend-template/signing-keys"
SEALED_VERSION = b"\x01"
NONCE_BYTES = 12


class Unsealable(ValueError):
    """The blob was not sealed by this SECRET_KEY for this purpose and owner (or was
    altered)."""


class Sealer:
    """Seals and opens values for one ``purpose`` (the HKDF info: each purpose has a key
    of its own)."""

    def __init__(self, secret_key: str, purpose: bytes) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=HKDF_SALT, info=purpose).derive(
            secret_key.encode("utf-8")
        )
        self._aead = AESGCM(derived)

    def seal(self, owner: bytes, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return SEALED_VERSION + nonce + self._aead.encrypt(nonce, plaintext, owner)

    def open(self, owner: bytes, blob: bytes) -> bytes:
        if blob[:1] != SEALED_VERSION or len(blob) <= 1 + NONCE_BYTES:
            raise Unsealable()
        nonce, ciphertext = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, ciphertext, owner)
        except InvalidTag:
            raise Unsealable() from None
