"""The settings of each surface and subsystem; `app.config.Settings` combines them.

Each group is a plain model: the field names are the TOML keys, the upper-case alias the
environment variable. Comma-separated lists from the environment are split in `Settings`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, BaseModel, Field, JsonValue, SecretStr, field_validator
from pydantic_settings import NoDecode

from channels.telegram.config import DmPolicy, Streaming
from hub.tools.config import McpServerConfig, SearchProvider, ToolPolicy


class ModelSettings(BaseModel):
    """The model a turn runs on, the ones a chat may switch to, and the provider keys."""

    model: str | None = Field(
        default=None, validation_alias=AliasChoices("AGENTHUB_MODEL", "model")
    )
    # Other model specs a chat may switch its session to (`/model <spec>`).
    models: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=AliasChoices("AGENTHUB_MODELS", "models")
    )
    system_prompt: str | None = Field(
        default=None, validation_alias=AliasChoices("AGENTHUB_SYSTEM_PROMPT", "system_prompt")
    )
    context_window: int | None = Field(
        default=None, validation_alias=AliasChoices("AGENTHUB_CONTEXT_WINDOW", "context_window")
    )
    image_input: bool | None = Field(
        default=None, validation_alias=AliasChoices("AGENTHUB_IMAGE_INPUT", "image_input")
    )
    transcribe_model: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AGENTHUB_TRANSCRIBE_MODEL", "transcribe_model"),
    )
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "openai_api_key")
    )
    openai_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OPENAI_BASE_URL", "openai_base_url"),
        repr=False,
    )
    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ANTHROPIC_API_KEY", "anthropic_api_key")
    )

    @field_validator("context_window")
    @classmethod
    def _window_range(cls, value: int | None) -> int | None:
        if value is not None and value < 512:
            raise ValueError("must be at least 512 tokens")
        return value


class GatewaySettings(BaseModel):
    """The link to a gateway and its scale-out."""

    gateway_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AGENTHUB_GATEWAY_URL", "gateway_url"),
        repr=False,
    )
    gateway_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("AGENTHUB_GATEWAY_TOKEN", "gateway_token")
    )
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("AGENTHUB_REDIS_URL", "redis_url"), repr=False
    )
    public_url: str | None = Field(
        default=None, validation_alias=AliasChoices("AGENTHUB_PUBLIC_URL", "public_url")
    )


class TelegramSettings(BaseModel):
    """The Telegram channel."""

    telegram_bot_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TELEGRAM_BOT_TOKEN", "telegram_bot_token")
    )
    telegram_api_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TELEGRAM_API_BASE_URL", "telegram_api_base_url"),
    )
    telegram_dm_policy: DmPolicy = Field(
        default="pairing", validation_alias=AliasChoices("TELEGRAM_DM_POLICY", "telegram_dm_policy")
    )
    telegram_allowed_users: Annotated[list[int], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices("TELEGRAM_ALLOWED_USERS", "telegram_allowed_users"),
    )
    telegram_streaming: Streaming = Field(
        default="edit",
        validation_alias=AliasChoices("TELEGRAM_STREAMING", "telegram_streaming"),
    )
    telegram_send_retry_seconds: float = Field(
        default=900.0,
        ge=0,
        validation_alias=AliasChoices("TELEGRAM_SEND_RETRY_SECONDS", "telegram_send_retry_seconds"),
    )
    telegram_group_context_messages: int = Field(
        default=20,
        ge=0,
        le=200,
        validation_alias=AliasChoices(
            "TELEGRAM_GROUP_CONTEXT_MESSAGES", "telegram_group_context_messages"
        ),
    )
    telegram_group_context_chars: int = Field(
        default=4000,
        ge=0,
        le=50_000,
        validation_alias=AliasChoices(
            "TELEGRAM_GROUP_CONTEXT_CHARS", "telegram_group_context_chars"
        ),
    )
    telegram_webhook_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AGENTHUB_TELEGRAM_WEBHOOK_URL", "telegram_webhook_url"),
    )
    telegram_webhook_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "AGENTHUB_TELEGRAM_WEBHOOK_SECRET", "telegram_webhook_secret"
        ),
    )


class ToolSettings(BaseModel):
    """Tools: which are on, their policies, MCP servers and web search."""

    tools: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=AliasChoices("AGENTHUB_TOOLS", "tools")
    )
    enable_tools: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices("AGENTHUB_ENABLE_TOOLS", "enable_tools"),
    )
    tool_policies: dict[str, ToolPolicy] = Field(
        default_factory=dict, validation_alias=AliasChoices("tool_policies")
    )
    mcp_servers: list[McpServerConfig] = Field(
        default_factory=list, validation_alias=AliasChoices("mcp_servers")
    )
    brave_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("BRAVE_API_KEY", "brave_api_key")
    )
    tavily_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TAVILY_API_KEY", "tavily_api_key")
    )
    web_search_provider: SearchProvider | None = Field(
        default=None,
        validation_alias=AliasChoices("AGENTHUB_WEB_SEARCH_PROVIDER", "web_search_provider"),
    )
    web_search_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AGENTHUB_WEB_SEARCH_URL", "web_search_url"),
        repr=False,
    )
    tool_settings: dict[str, JsonValue] = Field(
        default_factory=dict, validation_alias=AliasChoices("tool_settings")
    )
