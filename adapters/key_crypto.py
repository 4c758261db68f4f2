"""The cryptography of signing keys (``cryptography``): key pairs, their public JWKs,
RFC 7638 thumbprints, and the sealing of private keys at rest.

A private key is stored as PKCS#8 DER sealed by ``adapters.sealing`` (AES-256-GCM
under a key derived from SECRET_KEY), with the kid as associated data: a sealed blob
copied onto another key's row does not open.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from adapters.sealing import Sealer, Unsealable
from domain.signing_keys import KeyMaker, KeyMaterial, SigningKey, SigningKeyUnreadable

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

HKDF_INFO = b"AES-256-GCM key sealing JWT signing private keys, v1"
# RFC 7638, 3.2: the members a thumbprint covers, by key type.
THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
EC_COORDINATE_BYTES = 32  # P-256


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def thumbprint(jwk: Mapping[str, str]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK, base64url-encoded."""
    members = THUMBPRINT_MEMBERS[jwk["kty"]]
    canonical = json.dumps(
        {name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True
    )
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def public_jwk(key: PublicKey) -> dict[str, str]:
    """The public parameters of a key, as JWK members (RFC 7518, 6.2; RFC 8037, 2)."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        numbers = key.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(numbers.x.to_bytes(EC_COORDINATE_BYTES, "big")),
            "y": b64url(numbers.y.to_bytes(EC_COORDINATE_BYTES, "big")),
        }
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}


def load_public_key(jwk: Mapping[str, str]) -> PublicKey:
    """The verifying key of a stored public JWK."""
    if jwk["kty"] == "EC" and jwk["crv"] == "P-256":
        numbers = ec.EllipticCurvePublicNumbers(
            int.from_bytes(_b64url_decode(jwk["x"]), "big"),
            int.from_bytes(_b64url_decode(jwk["y"]), "big"),
            ec.SECP256R1(),
        )
        return numbers.public_key()
    if jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519":
        return ed25519.Ed25519PublicKey.from_public_bytes(_b64url_decode(jwk["x"]))
    raise ValueError(f"unsupported public key {jwk['kty']}/{jwk.get('crv')}")


def _generate(algorithm: str) -> PrivateKey:
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"no asymmetric key for algorithm {algorithm!r}")


class AesGcmKeyMaker(KeyMaker):
    """Makes key pairs and seals and opens their private parts with SECRET_KEY."""

    def __init__(self, secret_key: str) -> None:
        self._sealer = Sealer(secret_key, HKDF_INFO)

    def make(self, algorithm: str) -> KeyMaterial:
        private = _generate(algorithm)
        jwk = public_jwk(private.public_key())
        kid = thumbprint(jwk)
        der = private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return KeyMaterial(kid=kid, public_jwk=jwk, sealed_private=self.seal(kid, der))

    def seal(self, kid: str, plaintext: bytes) -> bytes:
        return self._sealer.seal(kid.encode(), plaintext)

    def open(self, key: SigningKey) -> PrivateKey:
        """The private key of ``key``; ``SigningKeyUnreadable`` if this SECRET_KEY did
        not seal it (or the blob was altered or belongs to another kid)."""
        try:
            der = self._sealer.open(key.kid.encode(), key.sealed_private)
        except Unsealable:
            raise SigningKeyUnreadable(key.kid) from None
        private: Any = serialization.load_der_private_key(der, password=None)
        if not isinstance(private, PrivateKey):
            raise SigningKeyUnreadable(key.kid)
        return private

    def check_readable(self, key: SigningKey) -> None:
        # Opening it is the proof; the private key is dropped at once.
        self.open(key)
