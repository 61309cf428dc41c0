"""Configuration: environment > TOML > defaults, clear errors naming the variable, masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigError, load_settings
from app.logs import MASK, RedactSecrets


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    for name in (
        "AGENTHUB_PORT",
        "AGENTHUB_HOST",
        "AGENTHUB_MODEL",
        "TELEGRAM_BOT_TOKEN",
        "TELEGRAM_DM_POLICY",
        "TELEGRAM_ALLOWED_USERS",
        "OPENAI_API_KEY",
        "AGENTHUB_REDIS_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AGENTHUB_DATA_DIR", str(data_dir))


def test_defaults(data_dir: Path) -> None:
    settings = load_settings()
    assert (settings.host, settings.port, settings.model) == ("127.0.0.1", 8765, None)
    assert settings.data_dir == data_dir
    assert settings.telegram_dm_policy == "pairing"
    assert settings.shutdown_grace == 10.0


def test_environment_beats_toml_beats_defaults(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    (data_dir / "config.toml").write_text('port = 9001\nmodel = "echo"\nhost = "127.0.0.2"\n')
    monkeypatch.setenv("AGENTHUB_PORT", "9002")
    settings = load_settings()
    assert settings.port == 9002
    assert settings.model == "echo"
    assert settings.host == "127.0.0.2"
    assert load_settings(port="9003").port == 9003


def test_explicit_config_file(tmp_path: Path) -> None:
    config = tmp_path / "other.toml"
    config.write_text('telegram_dm_policy = "allowlist"\ntelegram_allowed_users = [5, 7]\n')
    settings = load_settings(config)
    assert settings.telegram_dm_policy == "allowlist"
    assert settings.telegram_allowed_users == [5, 7]


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--config: no such file"):
        load_settings(tmp_path / "nope.toml")


def test_comma_separated_users(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_ALLOWED_USERS", "12, 34,56")
    assert load_settings().telegram_allowed_users == [12, 34, 56]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("AGENTHUB_PORT", "abc", "AGENTHUB_PORT: must be 1-65535, got 'abc'"),
        ("AGENTHUB_PORT", "70000", "AGENTHUB_PORT: must be 1-65535, got '70000'"),
        ("TELEGRAM_DM_POLICY", "everyone", "TELEGRAM_DM_POLICY:"),
        ("TELEGRAM_ALLOWED_USERS", "12,bob", "TELEGRAM_ALLOWED_USERS:"),
        ("AGENTHUB_SHUTDOWN_GRACE", "-1", "AGENTHUB_SHUTDOWN_GRACE: must be 0-3600 seconds"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert message in str(caught.value)


def test_bad_toml_is_reported(data_dir: Path) -> None:
    (data_dir / "config.toml").write_text("port = = 3\n")
    with pytest.raises(ConfigError, match=r"config\.toml"):
        load_settings()


def test_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:telegram-secret-token")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret-key")
    monkeypatch.setenv("AGENTHUB_REDIS_URL", "redis://user:redis-password@127.0.0.1:6379/0")
    settings = load_settings()
    shown = " ".join(settings.masked().values()) + repr(settings)
    for secret in ("telegram-secret-token", "sk-openai-secret-key", "redis-password"):
        assert secret not in shown
    assert set(settings.secrets()) == {
        "123456:telegram-secret-token",
        "sk-openai-secret-key",
        "redis-password",
    }


def test_log_filter_masks_secrets_in_messages_and_tracebacks() -> None:
    import logging

    record = logging.LogRecord(
        "agenthub.test", logging.INFO, __file__, 1, "token is %s", ("s3cret-value",), None
    )
    try:
        raise RuntimeError("failed with s3cret-value")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    assert RedactSecrets(["s3cret-value"]).filter(record)
    assert record.getMessage() == f"token is {MASK}"
    assert record.exc_text is not None
    assert "s3cret-value" not in record.exc_text


def test_group_context_sizes_reach_the_telegram_plugin(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    from app.compose import build
    from channels.telegram import TelegramPlugin

    (data_dir / "config.toml").write_text("telegram_group_context_chars = 900\n")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:test-token")
    monkeypatch.setenv("TELEGRAM_GROUP_CONTEXT_MESSAGES", "5")
    runtime = build(load_settings(), "serve")
    assert runtime.channels is not None
    (plugin,) = runtime.channels.plugins.values()
    assert isinstance(plugin, TelegramPlugin)
    assert (plugin.config.group_context_messages, plugin.config.group_context_chars) == (5, 900)
    monkeypatch.setenv("TELEGRAM_GROUP_CONTEXT_MESSAGES", "500")
    with pytest.raises(ConfigError, match="TELEGRAM_GROUP_CONTEXT_MESSAGES"):
        load_settings()
