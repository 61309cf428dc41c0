"""The Telegram channel (python-telegram-bot): `TelegramConfig` and `TelegramPlugin`."""

from channels.telegram.config import DmPolicy, RateLimits, TelegramConfig
from channels.telegram.connection import TelegramStartError
from channels.telegram.plugin import TelegramPlugin

__all__ = ["DmPolicy", "RateLimits", "TelegramConfig", "TelegramPlugin", "TelegramStartError"]
