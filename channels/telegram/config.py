"""TelegramConfig: the Telegram channel's settings, built by the composition root."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

DmPolicy = Literal["pairing", "allowlist", "open", "disabled"]
Streaming = Literal["edit", "off"]


class RateLimits(BaseModel):
    """Outbound message limits (Telegram's published ones, with a small safety margin)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    global_per_second: float = Field(default=29.0, gt=0)
    chat_interval: float = Field(default=1.0, ge=0)
    group_per_minute: float = Field(default=20.0, gt=0)


class TelegramConfig(BaseModel):
    """`bot_token` enables the channel. `api_base_url` is python-telegram-bot's `base_url`
    form (`…/bot`, the token is appended), e.g. a self-hosted Bot API server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bot_token: SecretStr
    api_base_url: str = "https://api.telegram.org/bot"
    api_base_file_url: str | None = None
    dm_policy: DmPolicy = "pairing"
    allowed_users: list[int] = Field(default_factory=list)
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    poll_timeout: float = Field(default=25.0, ge=0, le=50)
    # How long past `poll_timeout` a poll may take to answer before it counts as timed out.
    poll_read_slack: float = Field(default=10.0, gt=0)
    # A poll that has not completed for this long is restarted (long-poll time + slack).
    watchdog_stall: float = Field(default=90.0, gt=0)
    watchdog_interval: float = Field(default=10.0, gt=0)
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=15.0, gt=0)
    write_timeout: float = Field(default=15.0, gt=0)
    # First wait before retrying to reach the Bot API when it was unreachable at start.
    reconnect_initial: float = Field(default=2.0, gt=0)
    # Tries for a send that is not an outbox entry (a pairing notice).
    send_attempts: int = Field(default=5, ge=1, le=20)
    # How long an outbox entry (a reply's block or edit) is retried through transient
    # failures, counted from when it was recorded, across restarts.
    send_retry_seconds: float = Field(default=900.0, ge=0)
    backoff_initial: float = Field(default=0.5, ge=0)
    backoff_max: float = Field(default=30.0, ge=0)
    # Longest RetryAfter we wait out before giving up on a block.
    max_retry_after: float = Field(default=120.0, ge=0)
    # Message ids after the last known one probed when a send's outcome is unknown.
    probe_window: int = Field(default=3, ge=0, le=20)
    probe_delay: float = Field(default=1.0, ge=0)
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    # `edit`: replies appear at once and grow by editing the message; `off`: finished blocks.
    streaming: Streaming = "edit"
    # Least time between two edits of a growing message (finished text is not held back).
    edit_interval: float = Field(default=1.0, ge=0)
    # Tries for a live reply's sends and edits: its text must arrive whole, even through
    # long runs of failures (each try waits its backoff, up to `backoff_max`).
    live_attempts: int = Field(default=12, ge=1, le=50)
    # Reactions on the user's message: when the run starts, and when its reply is final.
    # Group messages the bot saw but did not answer, given to the model when it is next
    # addressed there (`groups.py`): at most this many, within this many characters.
    group_context_messages: int = Field(default=20, ge=0, le=200)
    group_context_chars: int = Field(default=4000, ge=0, le=50_000)
    ack_reaction: str | None = "👀"
    done_reaction: str | None = "👍"

    @field_validator("api_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(
                "must be an http(s) URL ending in /bot, e.g. https://api.telegram.org/bot"
            )
        return value

    @field_validator("bot_token")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value()
        if not token or any(c.isspace() or c == "/" for c in token):
            raise ValueError("must be a bot token from @BotFather (no spaces or slashes)")
        return value

    @model_validator(mode="after")
    def _webhook(self) -> TelegramConfig:
        if self.webhook_url is not None:
            if not self.webhook_url.startswith("https://") and not self.webhook_url.startswith(
                "http://127.0.0.1"
            ):
                raise ValueError("webhook_url must be https:// (Telegram only calls https)")
            secret = self.webhook_secret.get_secret_value() if self.webhook_secret else ""
            if len(secret) < 16 or not all(c.isalnum() or c in "_-" for c in secret):
                raise ValueError(
                    "webhook_secret is required with webhook_url: "
                    "16-256 characters of A-Z a-z 0-9 _ -"
                )
        return self
