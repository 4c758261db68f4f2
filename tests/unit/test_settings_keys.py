"""The settings of asymmetric tokens: ALGORITHM=ES256/EdDSA, the activation delay, and
the SECRET_KEY that seals the private keys."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from entrypoints.container import codec_kind, key_policy_of
from entrypoints.settings import InvalidSettings, Settings, load_settings

GOOD_KEY = "Zx8-qL2v_Rt6Wn0pYb4Hs1Kd7Fj3Mc9Ge5"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.lower() in Settings.model_fields:
            monkeypatch.delenv(name)


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_an_asymmetric_algorithm_signs_with_stored_keys(algorithm: str) -> None:
    settings = load_settings(algorithm=algorithm, secret_key=GOOD_KEY)

    policy = key_policy_of(settings)
    assert (policy.algorithm, policy.asymmetric) == (algorithm, True)
    assert codec_kind(settings) == "keys"


def test_hmac_stays_the_default() -> None:
    settings = load_settings()

    assert codec_kind(settings) == "hmac"
    assert not key_policy_of(settings).asymmetric


def test_keys_outlive_the_longest_token_and_wait_the_activation_delay() -> None:
    default = key_policy_of(load_settings(algorithm="ES256"))
    tuned = key_policy_of(
        load_settings(
            algorithm="ES256", refresh_token_expire_days=30, jwt_key_activation_delay_seconds=0
        )
    )

    assert (default.token_lifetime, default.activation_delay) == (
        timedelta(days=7),
        timedelta(seconds=600),
    )
    assert (tuned.token_lifetime, tuned.activation_delay) == (timedelta(days=30), timedelta(0))


@pytest.mark.parametrize("value", ["-1", "soon", str(31 * 24 * 3600)])
def test_a_bad_activation_delay_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("JWT_KEY_ACTIVATION_DELAY_SECONDS", value)

    with pytest.raises(InvalidSettings, match="JWT_KEY_ACTIVATION_DELAY_SECONDS"):
        load_settings()


def test_an_unknown_algorithm_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALGORITHM", "RS256")

    with pytest.raises(InvalidSettings, match="ALGORITHM"):
        load_settings()


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_production_wants_32_bytes_of_secret_key_to_seal_the_private_keys(
    monkeypatch: pytest.MonkeyPatch, algorithm: str
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("ALGORITHM", algorithm)
    monkeypatch.setenv("SECRET_KEY", GOOD_KEY[:31])

    with pytest.raises(InvalidSettings, match=f"at least 32 bytes in production .with {algorithm}"):
        load_settings()
    monkeypatch.setenv("SECRET_KEY", GOOD_KEY + "!")
    assert load_settings().algorithm == algorithm


def test_a_short_key_outside_production_draws_a_warning() -> None:
    settings = load_settings(algorithm="EdDSA", secret_key="short")

    assert any("shorter than 32 bytes" in warning for warning in settings.warnings())
