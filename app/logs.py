"""Logging: one logger per subsystem (`agenthub.<name>`), a level from `--log-level`, and a
filter that masks every configured secret, as a last line of defence behind code that never
logs them in the first place."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
MASK = "**********"


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret (longest first) replaced by a mask."""
    # Short values would mask ordinary words; real tokens are long.
    for secret in sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


class RedactSecrets(logging.Filter):
    """Replace each secret in a record's final message (and traceback) with a mask."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = list(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text, self._secrets)
        record.msg, record.args = mask_secrets(record.getMessage(), self._secrets), None
        return True


def configure(level: str, secrets: Iterable[str] = ()) -> None:
    """Send logs to stderr at `level`, secrets masked; quiet chatty libraries."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("aiohttp.access", "engineio", "socketio", "httpx", "httpcore", "telegram.ext"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
