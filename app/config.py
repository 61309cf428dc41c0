"""Configuration: command-line options > environment > TOML file > defaults.

The environment variables are those of the contract (`AGENTHUB_*`, `TELEGRAM_*`, provider
keys), plus a few `AGENTHUB_*` extras. The TOML file (`<data-dir>/config.toml`, or `--config`)
uses the field names, e.g. `port = 8765` or `telegram_dm_policy = "allowlist"`.
Secrets are `SecretStr`: they print as `**********` wherever configuration is shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from app.agents import AgentTable
from app.settings_groups import (
    GatewaySettings,
    ModelSettings,
    TelegramSettings,
    ToolSettings,
)
from hub.bindings import Binding
from hub.heartbeats import HeartbeatSpec
from hub.recovery import RecoveryConfig
from hub.schedules import ScheduleSpec
from hub.scopes import DmScope
from hub.usage import BudgetConfig, Price

LogLevel = Literal["debug", "info", "warning", "error"]


class ConfigError(Exception):
    """Bad configuration; the message names the variable and why. Exit status 2."""


class HubSettings(BaseModel):
    """Where the hub keeps its data and serves, who may use it, and how it runs."""

    data_dir: Path = Field(
        default=Path("~/.agenthub"), validation_alias=AliasChoices("AGENTHUB_DATA_DIR", "data_dir")
    )
    host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("AGENTHUB_HOST", "host"))
    port: int = Field(default=8765, validation_alias=AliasChoices("AGENTHUB_PORT", "port"))
    agents: AgentTable = Field(default_factory=dict, validation_alias=AliasChoices("agents"))
    bindings: list[Binding] = Field(default_factory=list, validation_alias=AliasChoices("bindings"))
    owners: Annotated[list[str], NoDecode] | None = Field(
        default=None, validation_alias=AliasChoices("AGENTHUB_OWNERS", "owners")
    )
    dm_scope: DmScope | None = Field(
        default=None, validation_alias=AliasChoices("AGENTHUB_DM_SCOPE", "dm_scope")
    )
    guest_devices: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices("AGENTHUB_GUEST_DEVICES", "guest_devices"),
    )
    identity_links: dict[str, list[str]] = Field(
        default_factory=dict, validation_alias=AliasChoices("identity_links")
    )
    max_concurrent_runs: int = Field(
        default=4,
        validation_alias=AliasChoices("AGENTHUB_MAX_CONCURRENT_RUNS", "max_concurrent_runs"),
    )
    schedules: list[ScheduleSpec] = Field(
        default_factory=list, validation_alias=AliasChoices("schedules")
    )
    heartbeats: list[HeartbeatSpec] = Field(
        default_factory=list, validation_alias=AliasChoices("heartbeats")
    )
    recovery: RecoveryConfig = Field(
        default_factory=RecoveryConfig, validation_alias=AliasChoices("recovery")
    )
    prices: dict[str, Price] = Field(default_factory=dict, validation_alias=AliasChoices("prices"))
    budget: BudgetConfig = Field(
        default_factory=BudgetConfig, validation_alias=AliasChoices("budget")
    )
    shutdown_grace: float = Field(
        default=10.0, validation_alias=AliasChoices("AGENTHUB_SHUTDOWN_GRACE", "shutdown_grace")
    )
    log_level: LogLevel = Field(
        default="info", validation_alias=AliasChoices("AGENTHUB_LOG_LEVEL", "log_level")
    )

    @field_validator("port")
    @classmethod
    def _port_range(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError("must be 1-65535")
        return value

    @field_validator("shutdown_grace")
    @classmethod
    def _grace_range(cls, value: float) -> float:
        if not 0 <= value <= 3600:
            raise ValueError("must be 0-3600 seconds")
        return value

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()


class Settings(
    BaseSettings, ToolSettings, TelegramSettings, GatewaySettings, ModelSettings, HubSettings
):
    """Every setting of the hub, with the environment variable that sets it."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @field_validator(
        "telegram_allowed_users",
        "tools",
        "enable_tools",
        "owners",
        "guest_devices",
        "models",
        mode="before",
    )
    @classmethod
    def _split_lists(cls, value: object) -> object:
        """A list from the environment is comma-separated."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    # URLs may carry a password: they stay out of repr() and print through mask_url.

    def masked(self) -> dict[str, str]:
        """Every setting as text for display, secrets and URL passwords masked."""
        shown: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                shown[name] = "**********"
            elif name in ("redis_url", "gateway_url", "openai_base_url", "web_search_url"):
                shown[name] = mask_url(str(value))
            elif name == "mcp_servers":  # their env may hold keys: names only
                shown[name] = ",".join(server.name for server in value)
            elif isinstance(value, list):
                shown[name] = ",".join(str(v) for v in value)
            else:
                shown[name] = str(value)
        return shown

    def secrets(self) -> list[str]:
        """The configured secret values (for tests that grep logs for leaks)."""
        values = [
            v.get_secret_value()
            for v in (
                self.gateway_token,
                self.telegram_bot_token,
                self.telegram_webhook_secret,
                self.openai_api_key,
                self.anthropic_api_key,
                self.brave_api_key,
                self.tavily_api_key,
            )
            if v is not None
        ]
        passwords = [urlsplit(url).password for url in (self.redis_url, self.web_search_url) if url]
        return [*values, *(p for p in passwords if p)]


def mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":****@")
    return urlunsplit(parts._replace(netloc=netloc))


_ENV_NAMES = {
    name: next(
        (a for a in field.validation_alias.choices if isinstance(a, str) and a.isupper()), name
    )
    if isinstance(field.validation_alias, AliasChoices)
    else name
    for name, field in Settings.model_fields.items()
}


_FIELDS = {alias: name for name, alias in _ENV_NAMES.items()} | {n: n for n in _ENV_NAMES}


def env_name(field: str) -> str:
    """The environment variable that sets `field`."""
    return _ENV_NAMES.get(field, field)


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Build settings from `overrides` (command-line options), environment, TOML, defaults.

    Raises ConfigError with a message naming the variable, e.g.
    `AGENTHUB_PORT: must be 1-65535, got 'abc'`.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        if config_file is not None and not config_file.is_file():
            raise ConfigError(f"--config: no such file: {config_file}")
        data_dir = Settings.model_validate(
            {"data_dir": given["data_dir"]} if "data_dir" in given else {}
        ).data_dir
        toml = config_file or data_dir / "config.toml"

        class FromFile(Settings):
            model_config = SettingsConfigDict(toml_file=toml)

        return FromFile(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except ValueError as exc:  # TOML syntax errors
        raise ConfigError(f"{config_file or 'config.toml'}: {exc}") from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        field = _FIELDS.get(str(error["loc"][0]), "?") if error["loc"] else "?"
        name = env_name(field)
        reason = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] in ("int_parsing", "float_parsing"):
            reason = "must be a number" if field != "port" else "must be 1-65535"
        # An MCP server's entry may carry keys in its env: never echo it back.
        got = "" if field == "mcp_servers" else f", got {error.get('input')!r}"
        lines.append(f"{name}: {reason}{got}")
    return "\n".join(lines)
