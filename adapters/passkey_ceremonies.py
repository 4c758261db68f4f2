"""The WebAuthn ceremonies with py_webauthn: options for the browser, and the checks of
what it sends back (challenge, origin, RP id hash, user presence and verification,
signature, counter)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import options_to_json_dict, parse_authentication_credential_json
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from domain.errors import InvalidPasskey
from domain.passkeys import Assertion, CredentialJson, NewCredential, Passkey, WebAuthn

ALGORITHMS = [
    COSEAlgorithmIdentifier.ECDSA_SHA_256,
    COSEAlgorithmIdentifier.EDDSA,
    COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
]
# How long the browser offers the ceremony (a hint): within the challenge's 5 minutes.
TIMEOUT_MS = 120_000


class PyWebAuthn(WebAuthn):
    def __init__(self, rp_id: str, rp_name: str, origins: Sequence[str]) -> None:
        self._rp_id = rp_id
        self._rp_name = rp_name
        self._origins = list(origins)

    def registration_options(
        self,
        challenge: bytes,
        user_handle: bytes,
        user_name: str,
        display_name: str,
        exclude: list[bytes],
    ) -> dict[str, Any]:
        options = generate_registration_options(
            rp_id=self._rp_id,
            rp_name=self._rp_name,
            user_id=user_handle,
            user_name=user_name,
            user_display_name=display_name,
            challenge=challenge,
            timeout=TIMEOUT_MS,
            attestation=AttestationConveyancePreference.NONE,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=[PublicKeyCredentialDescriptor(id=c) for c in exclude],
            supported_pub_key_algs=ALGORITHMS,
        )
        return options_to_json_dict(options)

    def verify_registration(self, credential: CredentialJson, challenge: bytes) -> NewCredential:
        try:
            verified = verify_registration_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self._rp_id,
                expected_origin=self._origins,
                require_user_verification=True,
                supported_pub_key_algs=ALGORITHMS,
            )
        except Exception:  # any malformed or wrong response: the client's fault
            raise InvalidPasskey() from None
        return NewCredential(
            credential_id=verified.credential_id,
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            aaguid=verified.aaguid,
            backed_up=verified.credential_backed_up,
        )

    def authentication_options(self, challenge: bytes, allow: list[bytes]) -> dict[str, Any]:
        options = generate_authentication_options(
            rp_id=self._rp_id,
            challenge=challenge,
            timeout=TIMEOUT_MS,
            allow_credentials=[PublicKeyCredentialDescriptor(id=c) for c in allow],
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        return options_to_json_dict(options)

    def credential_id(self, credential: CredentialJson) -> bytes | None:
        try:
            return parse_authentication_credential_json(credential).raw_id
        except Exception:
            return None

    def verify_authentication(
        self, credential: CredentialJson, challenge: bytes, passkey: Passkey
    ) -> Assertion:
        try:
            verified = verify_authentication_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self._rp_id,
                expected_origin=self._origins,
                credential_public_key=passkey.public_key,
                credential_current_sign_count=passkey.sign_count,
                require_user_verification=True,
            )
        except Exception:
            raise InvalidPasskey() from None
        return Assertion(
            sign_count=verified.new_sign_count, backed_up=verified.credential_backed_up
        )
