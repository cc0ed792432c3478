"""Configuration errors name the key or line; secrets never appear in messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config, settings_from_mapping
from gateway.errors import ConfigError, MissingSecretError
from gateway.runtime import Gateway


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_shipped_config_loads() -> None:
    settings = load_config(Path(__file__).resolve().parents[2] / "config.yaml", env={})
    assert settings.default_provider == "console"
    assert settings.database_url.startswith("sqlite")


def test_unknown_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"outbox\.max_attemps: unknown key"):
        load_config(write(tmp_path, "outbox:\n  max_attemps: 3\n"), env={})


def test_wrong_type_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"outbox\.max_attempts"):
        load_config(write(tmp_path, "outbox:\n  max_attempts: lots\n"), env={})


def test_bad_region_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="default_region"):
        load_config(write(tmp_path, "default_region: XX\n"), env={})


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "brand: ok\nproviders:\n  console: {\n  twilio: [\n")
    with pytest.raises(ConfigError, match=r"config\.yaml:\d+"):
        load_config(path, env={})


def test_non_mapping_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, "- just\n- a list\n"), env={})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml", env={})


def test_database_url_env_overrides(tmp_path: Path) -> None:
    settings = load_config(write(tmp_path, "brand: x\n"), env={"DATABASE_URL": "sqlite:///other.db"})
    assert settings.database_url == "sqlite:///other.db"


def test_broken_rule_stops_start_up_with_line(tmp_path: Path) -> None:
    text = "brand: x\nrules:\n  - name: opt-out\n    match: {exact: [STOP]}\n    actions: [opt_out]\n" \
           "  - name: broken\n    match: {regex: ['(']}\n    actions: [opt_out]\n"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    assert "broken" in str(info.value) and "config.yaml:7" in str(info.value)  # the match line


def test_missing_secret_names_the_variable(db_url: str) -> None:
    settings = settings_from_mapping({"database_url": db_url, "providers": {"twilio": {}}, "default_provider": "twilio"})
    with pytest.raises(MissingSecretError, match="TWILIO_ACCOUNT_SID"):
        Gateway(settings, env={})


def test_secret_values_never_in_errors(db_url: str) -> None:
    env = {"TWILIO_ACCOUNT_SID": "ACsecretvalue123", "TWILIO_AUTH_TOKEN": "supersecrettoken"}
    settings = settings_from_mapping({"database_url": db_url, "providers": {"twilio": {}},
                                      "default_provider": "nope"})
    with pytest.raises(ConfigError) as info:
        Gateway(settings, env=env)
    assert "supersecret" not in str(info.value) and "default_provider" in str(info.value)


def test_sender_with_unconfigured_provider(db_url: str) -> None:
    data: dict[str, Any] = {"database_url": db_url, "senders": [{"address": "+14155550100", "provider": "twilio"}]}
    with pytest.raises(ConfigError, match="senders"):
        Gateway(settings_from_mapping(data), env={})
