"""Logging: one logger per subsystem (`agenthub.<name>`), a level from `--log-level`, and one
policy for every record, the libraries' included:

- every record passes the filter that masks configured secrets (a last line of defence
  behind code that never logs them in the first place);
- a library's record (engineio, socketio, aiohttp, telegram, httpx, httpcore) is one line:
  an exception it caught becomes `: Type: message`, never a traceback, and is logged at
  WARNING at most (a library that catches an exception while handling a request, a packet
  or an update is reporting bad input from outside, not a fault of this process); so is
  anything the servers' loggers say about what a peer sent (`INBOUND`: an unsupported
  protocol version, an unknown transport);
- the Socket.IO client libraries (`LINK_CLIENTS`) log errors only: the hub's link reports
  what they would;
- each source (library logger and message) logs at most `burst` records per `window`
  seconds; the next one after a quiet window says how many were left out. A stranger
  sending garbage can neither fill the disk nor bury real errors.
Libraries never get handlers of their own: their records go through the root handler.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
MASK = "**********"
LIBRARIES = ("engineio", "socketio", "aiohttp", "telegram", "httpx", "httpcore")
# Loggers these libraries would give a handler of their own if they found none configured.
LIBRARY_DEFAULT_LOGGERS = (
    "engineio.server",
    "engineio.client",
    "socketio.server",
    "socketio.client",
)
INBOUND = (
    "engineio.server",
    "socketio.server",
    "aiohttp.server",
    "aiohttp.web",
    "aiohttp.websocket",
)
QUIET = ("aiohttp.access", "engineio", "socketio", "httpx", "httpcore", "telegram.ext")
# The hub's link to the gateway reports its own state (`gateway link down: <reason>`, its
# health, its retries); its client libraries' words on the same events (a warning at every
# orderly disconnect among them) would only say it twice.
LINK_CLIENTS = ("engineio.client", "socketio.client")
MAX_SOURCES = 1000


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


@dataclass(slots=True)
class _Source:
    since: float
    count: int = 0
    left_out: int = 0


def is_library(name: str) -> bool:
    return name.split(".", 1)[0] in LIBRARIES


class LibraryRecords(logging.Filter):
    """The library half of the policy above: one line, WARNING at most, rate-limited."""

    def __init__(
        self, burst: int = 5, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self._clock = clock
        self._sources: dict[tuple[str, str], _Source] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not is_library(record.name):
            return True
        note = self._admit((record.name, str(record.msg)))
        if note is None:
            return False
        message = record.getMessage()
        caught = record.exc_info is not None and record.exc_info[1] is not None
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            message = f"{message}: {type(exc).__name__}: {exc}"
        if (caught or record.name in INBOUND) and record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg = " ".join(message.split()) + note
        record.args = record.exc_info = record.exc_text = record.stack_info = None
        return True

    def _admit(self, key: tuple[str, str]) -> str | None:
        """ "" or a note of records left out: log it; None: leave it out."""
        now = self._clock()
        source = self._sources.get(key)
        note = ""
        if source is None or now - source.since >= self.window:
            if source is not None and source.left_out:
                note = f" ({source.left_out} more like this in the last {now - source.since:.0f} s)"
            if len(self._sources) >= MAX_SOURCES:
                self._sources.clear()
            source = self._sources[key] = _Source(now)
        source.count += 1
        if source.count > self.burst:
            source.left_out += 1
            return None
        return note


def configure(level: str, secrets: Iterable[str] = (), *, stream: TextIO | None = None) -> None:
    """Send logs to stderr (or `stream`) at `level` under the policy above."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(LibraryRecords())
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    quiet_libraries(max(logging.WARNING, root.level))


def quiet_libraries(level: int = logging.WARNING) -> None:
    """Libraries log at `level` and up, whatever the root level: engineio and socketio log
    every packet (device tokens included) at INFO."""
    for name in QUIET:
        logging.getLogger(name).setLevel(level)
    for name in LIBRARY_DEFAULT_LOGGERS:
        # A level set here keeps the library from adding a handler (it checks for NOTSET);
        # any it added already is removed, so every record takes the root handler's path.
        library = logging.getLogger(name)
        for own in list(library.handlers):
            library.removeHandler(own)
        library.setLevel(max(level, logging.ERROR) if name in LINK_CLIENTS else level)
        library.propagate = True
