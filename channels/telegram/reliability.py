"""Sending a message exactly once over an unreliable network.

Every send to a chat holds that chat's lock, so sends to one chat never overlap. Failures
are sorted by what they say about the message:

- Telegram answered with an error (429, 5xx, a refused connection, a timeout before the
  request was fully written): the message was not accepted, so it is sent again: after
  `retry_after` for a 429, after an exponential backoff otherwise.
- "can't parse entities": sent again at once as plain text.
- The request was written but no answer came back (read timeout, connection dropped):
  *ambiguous*. Peers simply never retry those (a possible loss). We ask Telegram instead:
  a message that landed is the bot's newest message in that chat, so its id is just above
  the highest id we knew when we sent it. We try `editMessageText` with the very same text
  on those few ids: "message is not modified" (or a successful edit) proves it landed; "not
  found" / "can't be edited" (someone else's message) on every candidate means it did not,
  and it is sent again. Editing a candidate can never touch another of our messages,
  because every earlier send to the chat finished (under the lock) with a known id below.
  If the probe itself cannot get an answer, the block is NOT resent (logged as lost): a
  duplicate is what users hate most, and the next block still follows. With no known id in
  the chat (nothing seen there yet) there is nothing to probe and the block is resent.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import logging
import warnings
from dataclasses import dataclass
from enum import Enum

import httpx
from telegram import Bot, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.warnings import PTBDeprecationWarning

from channels.telegram.config import TelegramConfig
from channels.telegram.formatting import html_to_plain
from channels.telegram.ratelimit import RateLimiter

log = logging.getLogger("agenthub.telegram")

# httpx failures that happen before the request reached the server whole.
_UNSENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.WriteError,
    httpx.WriteTimeout,
)


class Failure(Enum):
    UNSENT = "unsent"
    AMBIGUOUS = "ambiguous"


def classify(exc: NetworkError) -> Failure:
    """Whether a network failure may have delivered the request (see module docstring)."""
    cause = exc.__cause__
    if isinstance(cause, _UNSENT):
        return Failure.UNSENT
    if isinstance(cause, httpx.HTTPError):
        return Failure.AMBIGUOUS
    # No transport cause: Telegram answered with an error status (e.g. 502), so nothing was
    # accepted. A TimedOut without a cause is PTB's own pool timeout (never sent).
    return Failure.UNSENT


def retry_after_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        # PTB 22 warns that the int form will become a timedelta; both are handled here.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


@dataclass(slots=True)
class SendStats:
    """Counters for health, tests and the benchmark."""

    calls: int = 0
    delivered: int = 0
    retries: int = 0
    rate_limited: int = 0
    ambiguous: int = 0
    probe_landed: int = 0
    plain_fallbacks: int = 0
    gave_up: int = 0
    edit_calls: int = 0
    edits: int = 0


class ReliableSender:
    """Sends text to chats with retries, plain-text fallback and ambiguity probing."""

    def __init__(self, bot: Bot, config: TelegramConfig, limiter: RateLimiter) -> None:
        self.bot = bot
        self.config = config
        self.limiter = limiter
        self.stats = SendStats()
        self._locks: dict[str, asyncio.Lock] = {}
        self._known: dict[str, int] = {}

    def note_message(self, chat_id: str, message_id: int) -> None:
        """Remember the highest message id seen in a chat (ours or the user's)."""
        if message_id > self._known.get(chat_id, 0):
            self._known[chat_id] = message_id

    def lock(self, chat_id: str) -> asyncio.Lock:
        """The chat's lock: every call that sends or edits in that chat holds it."""
        lock = self._locks.get(chat_id)
        if lock is None:
            lock = self._locks[chat_id] = asyncio.Lock()
        return lock

    async def send(
        self,
        chat_id: str,
        text: str,
        *,
        html: bool,
        reply_to: int | None = None,
        thread_id: int | None = None,
        group: bool = False,
        attempts: int | None = None,
    ) -> int | None:
        """Deliver one message (<= 4096 after parsing); its message id once Telegram accepted
        it, None when it was given up on."""
        async with self.lock(chat_id):
            return await self._send_locked(
                chat_id,
                text,
                html,
                reply_to,
                thread_id,
                group,
                attempts or self.config.send_attempts,
            )

    async def _send_locked(
        self,
        chat_id: str,
        text: str,
        html: bool,
        reply_to: int | None,
        thread_id: int | None,
        group: bool,
        attempts: int,
    ) -> int | None:
        floor = self._known.get(chat_id)
        parse_mode: str | None = ParseMode.HTML if html else None
        backoff = self.config.backoff_initial
        attempt = flood_waits = 0
        while attempt < attempts:
            attempt += 1
            self.stats.calls += 1
            try:
                async with self.limiter.slot(chat_id, group=group):
                    message = await self.bot.send_message(
                        chat_id=chat_id,
                        text=text,
                        parse_mode=parse_mode,
                        reply_parameters=(
                            ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
                            if reply_to is not None
                            else None
                        ),
                        message_thread_id=thread_id,
                    )
            except RetryAfter as exc:
                wait = retry_after_seconds(exc)
                self.stats.rate_limited += 1
                flood_waits += 1
                if wait > self.config.max_retry_after or flood_waits > 10:
                    log.error(
                        "telegram: chat %s flood-limited for %.0fs; block dropped", chat_id, wait
                    )
                    break
                log.warning("telegram: 429 for chat %s, retrying in %.1fs", chat_id, wait)
                attempt -= 1  # waiting out a 429 is Telegram's instruction, not a failure
                await asyncio.sleep(wait)
                continue
            except BadRequest as exc:
                if parse_mode is not None and "can't parse entities" in exc.message.lower():
                    log.warning("telegram: HTML refused (%s); resending as plain text", exc.message)
                    self.stats.plain_fallbacks += 1
                    parse_mode, text = None, html_to_plain(text)
                    attempt -= 1
                    continue
                log.error("telegram: chat %s refused a message: %s", chat_id, exc.message)
                break
            except Forbidden as exc:
                log.warning("telegram: cannot write to chat %s: %s", chat_id, exc.message)
                break
            except NetworkError as exc:
                if classify(exc) is Failure.AMBIGUOUS:
                    self.stats.ambiguous += 1
                    landed = await self._resolve(
                        chat_id,
                        floor,
                        text,
                        parse_mode,
                        group,
                        self._probe_tries(attempts, attempt),
                    )
                    if landed is None:
                        log.error(
                            "telegram: a message to chat %s may or may not have arrived (%s);"
                            " not resending it, to avoid a duplicate",
                            chat_id,
                            exc.message,
                        )
                        break
                    if landed is not False:
                        self.stats.probe_landed += 1
                        self.stats.delivered += 1
                        return landed
                    log.warning(
                        "telegram: send to chat %s lost in transit (%s); resending",
                        chat_id,
                        exc.message,
                    )
                else:
                    log.warning(
                        "telegram: send to chat %s failed (%s); retrying in %.1fs",
                        chat_id,
                        exc.message,
                        backoff,
                    )
                self.stats.retries += 1
                await asyncio.sleep(backoff)
                backoff = min(self.config.backoff_max, max(backoff * 2, 0.1))
                continue
            except TelegramError as exc:
                log.error("telegram: send to chat %s failed: %s", chat_id, exc.message)
                break
            self.stats.delivered += 1
            self.note_message(chat_id, message.message_id)
            return message.message_id
        self.stats.gave_up += 1
        log.error("telegram: gave up on a message to chat %s after %d attempts", chat_id, attempt)
        return None

    def _probe_tries(self, attempts: int, attempt: int) -> int:
        """Three probes; more for a send that was given more attempts than usual (a live
        reply's message, whose id the edits that follow need)."""
        if attempts <= self.config.send_attempts:
            return 3
        return max(3, attempts - attempt)

    async def _resolve(
        self,
        chat_id: str,
        floor: int | None,
        text: str,
        parse_mode: str | None,
        group: bool,
        tries: int,
    ) -> int | bool | None:
        """The id an ambiguous send landed as; False when it did not land, None when
        Telegram would not tell us."""
        if floor is None or self.config.probe_window == 0:
            return False
        delay = max(self.config.probe_delay, 0.05)
        for _ in range(tries):
            await asyncio.sleep(delay)
            landed = await self._probe(chat_id, floor, text, parse_mode, group)
            if landed is not None:
                return landed
            delay = min(self.config.backoff_max, delay * 2)
        return None

    async def _probe(
        self, chat_id: str, floor: int, text: str, parse_mode: str | None, group: bool
    ) -> int | bool | None:
        top = max(floor, self._known.get(chat_id, floor))
        for candidate in range(floor + 1, top + self.config.probe_window + 1):
            self.stats.calls += 1
            try:
                async with self.limiter.slot(chat_id, group=group):
                    await self.bot.edit_message_text(
                        text=text, chat_id=chat_id, message_id=candidate, parse_mode=parse_mode
                    )
            except BadRequest as exc:
                if "not modified" in exc.message.lower():
                    self.note_message(chat_id, candidate)
                    return candidate
                continue
            except TelegramError as exc:
                log.warning("telegram: probing chat %s failed (%s)", chat_id, exc.message)
                return None
            self.note_message(chat_id, candidate)
            return candidate
        return False
