"""load_settings: defaults as the README states them, and one clear line per mistake."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from entrypoints.container import signing_key
from entrypoints.settings import (
    PUBLISHED_SECRET_KEYS,
    InvalidSettings,
    Settings,
    load_settings,
)

GOOD_KEY = "Zx8-qL2v_Rt6Wn0pYb4Hs1Kd7Fj3Mc9Ge5"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Neither the developer's environment nor their ``.env`` may leak in."""
    monkeypatch.chdir(tmp_path)
    fields = set(Settings.model_fields)
    for name in list(os.environ):
        if name.lower() in fields:
            monkeypatch.delenv(name)


def refused(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InvalidSettings) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_defaults_are_the_documented_ones() -> None:
    settings = load_settings()

    assert settings.environment == "development"
    assert settings.project_name == "Backend Template"
    assert settings.database_url == "sqlite+aiosqlite:///./app.db"
    assert settings.algorithm == "HS256"
    assert settings.access_token_ttl == timedelta(minutes=30)
    assert settings.refresh_token_ttl == timedelta(days=7)
    assert settings.jwt_issuer is None
    assert settings.jwt_audience is None
    assert settings.allowed_origins == []
    assert settings.rate_limit_enabled is True
    assert settings.rate_limit_login == "5/minute"
    assert settings.rate_limit_refresh == "10/minute"
    assert settings.rate_limit_logout == "10/minute"
    assert settings.rate_limit_login_account == "10/15minutes"
    assert settings.rate_limit_register == "10/minute"
    assert settings.rate_limit_storage_uri == "memory://"
    assert settings.trusted_proxies == []
    assert settings.token_purge_interval_minutes == 60
    assert settings.jobs_metrics_port == 0
    assert settings.log_level == "INFO"
    assert settings.effective_log_format == "console"
    assert not settings.is_production


def test_without_a_key_development_signs_with_a_random_key_kept_beside_the_database(
    tmp_path: Path,
) -> None:
    settings = load_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/data/app.db")

    key = signing_key(settings)

    key_file = tmp_path / "data" / ".secret-key"
    assert settings.key_file == key_file
    assert key_file.read_text().strip() == key
    assert len(key) >= 64
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert signing_key(settings) == key  # kept: tokens survive a restart
    assert any(str(key_file) in warning for warning in settings.warnings())


def test_each_checkout_gets_its_own_generated_key(tmp_path: Path) -> None:
    first = load_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/one/app.db")
    second = load_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/two/app.db")

    assert signing_key(first) != signing_key(second)


def test_without_a_sqlite_file_the_key_is_kept_in_the_working_directory() -> None:
    for url in ("sqlite+aiosqlite://", "postgresql+asyncpg://u@localhost/db"):
        assert load_settings(database_url=url).key_file == Path(".secret-key")


def test_a_set_key_is_used_as_is_and_writes_no_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SECRET_KEY", GOOD_KEY)

    assert signing_key(load_settings()) == GOOD_KEY
    assert not (tmp_path / ".secret-key").exists()


def test_a_short_key_outside_production_is_allowed_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SECRET_KEY", "short")

    settings = load_settings()

    assert signing_key(settings) == "short"
    assert any("shorter than 32 bytes" in warning for warning in settings.warnings())


def test_a_good_key_draws_no_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY", GOOD_KEY)

    assert load_settings().warnings() == []


@pytest.mark.parametrize("environment", ["test", "production"])
def test_outside_development_logs_are_json(
    monkeypatch: pytest.MonkeyPatch, environment: str
) -> None:
    monkeypatch.setenv("ENVIRONMENT", environment)
    monkeypatch.setenv("SECRET_KEY", GOOD_KEY)

    assert load_settings().effective_log_format == "json"


def test_an_explicit_log_format_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_FORMAT", "json")
    monkeypatch.setenv("LOG_LEVEL", "debug")

    settings = load_settings()

    assert (settings.effective_log_format, settings.log_level) == ("json", "DEBUG")


# --- production's key ----------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(PUBLISHED_SECRET_KEYS))
def test_production_refuses_a_published_key(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    message = refused(monkeypatch, ENVIRONMENT="production", SECRET_KEY=key)

    assert "SECRET_KEY" in message
    assert "published" in message
    assert key not in message


@pytest.mark.parametrize("key", ["a" * 32, "ab" * 32, "0123" * 16, "aaaabbbbccccdddd" * 4])
def test_production_refuses_a_trivially_weak_key(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    message = refused(monkeypatch, ENVIRONMENT="production", SECRET_KEY=key)

    assert "SECRET_KEY" in message
    assert "guess" in message
    assert key not in message


def test_production_refuses_to_start_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    message = refused(monkeypatch, ENVIRONMENT="production")

    assert "SECRET_KEY" in message


def test_production_refuses_a_key_under_32_bytes_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = "k" * 31
    message = refused(monkeypatch, ENVIRONMENT="production", SECRET_KEY=key)

    assert "SECRET_KEY" in message
    assert "32 bytes" in message
    assert key not in message


def test_production_accepts_a_key_of_32_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    key = "é" * 6 + "abcdefghij"  # 16 characters, 22 bytes
    monkeypatch.setenv("SECRET_KEY", key + "ü" * 5)  # 32 bytes

    settings = load_settings()

    assert settings.is_production
    assert signing_key(settings) == key + "ü" * 5


def test_production_wants_a_longer_key_for_a_longer_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    message = refused(monkeypatch, ENVIRONMENT="production", SECRET_KEY="k" * 32, ALGORITHM="HS512")

    assert "SECRET_KEY" in message
    assert "64 bytes" in message


# --- lists ---------------------------------------------------------------------------


def test_allowed_origins_are_read_as_a_json_array(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_ORIGINS", '["https://app.example", "http://localhost:3000"]')

    assert load_settings().allowed_origins == ["https://app.example", "http://localhost:3000"]


@pytest.mark.parametrize(
    "value", ["https://app.example", "https://a.example,https://b.example", "[", '{"a": 1}', "[1]"]
)
def test_allowed_origins_that_are_not_a_json_array_of_strings_are_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    message = refused(monkeypatch, ALLOWED_ORIGINS=value)

    assert "ALLOWED_ORIGINS" in message


def test_trusted_proxies_take_addresses_and_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTED_PROXIES", '["10.0.0.1", "172.16.0.0/12", "::1"]')

    assert load_settings().trusted_proxies == ["10.0.0.1", "172.16.0.0/12", "::1"]


@pytest.mark.parametrize("value", ['["not-an-ip"]', "10.0.0.1"])
def test_bad_trusted_proxies_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    assert "TRUSTED_PROXIES" in refused(monkeypatch, TRUSTED_PROXIES=value)


# --- rate limits ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "variable",
    [
        "RATE_LIMIT_LOGIN",
        "RATE_LIMIT_REFRESH",
        "RATE_LIMIT_LOGOUT",
        "RATE_LIMIT_LOGIN_ACCOUNT",
        "RATE_LIMIT_REGISTER",
    ],
)
@pytest.mark.parametrize("value", ["lots", "5/fortnight", "-1/minute", ""])
def test_a_malformed_rate_limit_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    message = refused(monkeypatch, **{variable: value})

    assert message.startswith(f"invalid configuration: {variable}:")


def test_rate_limits_are_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_LOGIN", "3 per 10 seconds")
    monkeypatch.setenv("RATE_LIMIT_ENABLED", "false")
    monkeypatch.setenv("RATE_LIMIT_STORAGE_URI", "redis://redis:6379/0")

    settings = load_settings()

    assert settings.rate_limit_login == "3 per 10 seconds"
    assert settings.rate_limit_enabled is False
    assert settings.rate_limit_storage_uri == "redis://redis:6379/0"


def test_an_unknown_rate_limit_store_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "RATE_LIMIT_STORAGE_URI" in refused(
        monkeypatch, RATE_LIMIT_STORAGE_URI="memcached://localhost"
    )


# --- everything else -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ENVIRONMENT", "staging"),
        ("DATABASE_URL", "mysql://db/app"),
        ("DATABASE_URL", "postgresql://db/app"),
        ("ALGORITHM", "RS256"),
        ("ALGORITHM", "none"),
        ("ACCESS_TOKEN_EXPIRE_MINUTES", "0"),
        ("ACCESS_TOKEN_EXPIRE_MINUTES", "thirty"),
        ("REFRESH_TOKEN_EXPIRE_DAYS", "-1"),
        ("TOKEN_PURGE_INTERVAL_MINUTES", "0"),
        ("JOBS_METRICS_PORT", "65536"),
        ("RATE_LIMIT_ENABLED", "maybe"),
        ("LOG_LEVEL", "LOUD"),
        ("LOG_FORMAT", "xml"),
    ],
)
def test_a_bad_value_stops_start_up_with_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    message = refused(monkeypatch, **{variable: value})

    assert message.startswith(f"invalid configuration: {variable}:")


def test_settings_are_read_from_a_dotenv_file_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("PROJECT_NAME=From Dotenv\nLOG_LEVEL=WARNING\n")
    monkeypatch.setenv("LOG_LEVEL", "ERROR")

    settings = load_settings()

    assert (settings.project_name, settings.log_level) == ("From Dotenv", "ERROR")


def test_overrides_passed_in_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROJECT_NAME", "From Env")

    assert load_settings(project_name="Passed In").project_name == "Passed In"


def test_settings_cannot_be_changed_once_loaded() -> None:
    settings = load_settings()

    with pytest.raises(ValueError, match="frozen"):
        settings.environment = "production"


def test_production_with_per_process_limits_warns_that_they_multiply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", GOOD_KEY)
    monkeypatch.setenv("MAIL_BACKEND", "none")

    assert any("multiply" in warning for warning in load_settings().warnings())
    monkeypatch.setenv("RATE_LIMIT_STORAGE_URI", "redis://redis:6379/0")
    assert load_settings().warnings() == []


def test_the_job_runners_metrics_listen_on_loopback_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().jobs_metrics_host == "127.0.0.1"
    message = refused(monkeypatch, JOBS_METRICS_HOST="everywhere")
    assert "JOBS_METRICS_HOST" in message


# --- the settings of the security review ---------------------------------------------


def test_the_new_limits_hosts_and_metrics_port_have_their_documented_defaults() -> None:
    settings = Settings()

    assert settings.rate_limit_email_change == "3/hour"
    assert settings.mail_per_recipient_limit == "10/day"
    assert settings.allowed_hosts == ["*"]
    assert (settings.metrics_port, settings.metrics_host) == (None, "127.0.0.1")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ALLOWED_HOSTS", ""),
        ("ALLOWED_HOSTS", "[]"),
        ("ALLOWED_HOSTS", "api.example.com"),
        ("METRICS_PORT", "0"),
        ("METRICS_PORT", "70000"),
        ("METRICS_HOST", "localhost"),
        ("RATE_LIMIT_EMAIL_CHANGE", "often"),
        ("MAIL_PER_RECIPIENT_LIMIT", "0/day"),
    ],
)
def test_bad_hosts_metrics_ports_and_mail_limits_are_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    assert variable in refused(monkeypatch, **{variable: value})
