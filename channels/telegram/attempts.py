"""One message's way to Telegram: how failures are sorted, how long it may keep trying,
and the loop that sends it (see `channels.telegram.reliability` for the rules)."""

from __future__ import annotations

import asyncio
import datetime as dtm
import logging
import time
import warnings
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

import httpx
from pydantic import JsonValue
from telegram import ReplyParameters
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.warnings import PTBDeprecationWarning

from channels.outbox_store import IN_FLIGHT, Ticket
from channels.telegram.config import TelegramConfig
from channels.telegram.formatting import html_to_plain

if TYPE_CHECKING:
    from channels.telegram.reliability import ReliableSender

log = logging.getLogger("agenthub.telegram")

# The chat fact holding the newest message id known there: a restarted process's probe floor.
NEWEST = "newest"

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
    """Whether a network failure may have delivered the request (see the rules in
    `channels.telegram.reliability`)."""
    cause = exc.__cause__
    if isinstance(cause, _UNSENT):
        return Failure.UNSENT
    if isinstance(cause, httpx.HTTPError):
        return Failure.AMBIGUOUS
    if not isinstance(exc, TimedOut) and "gateway timeout" in exc.message.lower():
        return Failure.AMBIGUOUS  # a 504: a gateway gave up waiting, the call may have run
    # No transport cause: Telegram answered with an error status (e.g. 502), so nothing was
    # accepted. A TimedOut without a cause is PTB's own pool timeout (never sent).
    return Failure.UNSENT


async def back_off(delay: float, config: TelegramConfig) -> float:
    """Wait `delay` seconds after a failure; the next delay (doubled, 0.1 s at least,
    `backoff_max` at most)."""
    await asyncio.sleep(delay)
    return min(config.backoff_max, max(delay * 2, 0.1))


def retry_after_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        # PTB 22 warns that the int form will become a timedelta; both are handled here.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


@dataclass(slots=True)
class Budget:
    """How long a call may keep trying: `attempts` tries, or (for an outbox entry) until the
    wall-clock `deadline`."""

    attempts: int | None
    deadline: float = 0.0

    @classmethod
    def of(cls, ticket: Ticket | None, attempts: int, config: TelegramConfig) -> Budget:
        if ticket is None:
            return cls(attempts)
        return cls(None, ticket.at + config.send_retry_seconds)

    def allows(self, attempt: int) -> bool:
        """Whether try number `attempt + 1` may start."""
        if self.attempts is not None:
            return attempt < self.attempts
        return attempt == 0 or time.time() < self.deadline

    def waits(self, seconds: float, waits: int, config: TelegramConfig) -> bool:
        """Whether a 429's `retry_after` is waited out (else the call is given up)."""
        if self.attempts is not None:
            return seconds <= config.max_retry_after and waits <= 10
        return time.time() + seconds < self.deadline


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One Telegram message to send (<= 4096 after parsing)."""

    chat_id: str
    text: str
    html: bool
    reply_to: int | None = None
    thread_id: int | None = None
    group: bool = False
    # A message known to be in the chat already (the user's message the reply answers): a
    # probe floor when nothing newer is known there.
    after: int | None = None


class SendAttempt:
    """One message on its way to Telegram, under the chat's lock."""

    def __init__(
        self,
        sender: ReliableSender,
        message: OutgoingMessage,
        budget: Budget,
        ticket: Ticket | None,
        key: str,
    ) -> None:
        self.sender = sender
        self.message = message
        self.budget = budget
        self.ticket = ticket
        self.key = key  # this message's prefix among the ticket's facts
        self.text = message.text
        self.parse_mode: str | None = ParseMode.HTML if message.html else None

    def _fact(self, name: str) -> JsonValue:
        return self.ticket.facts.get(self.key + name) if self.ticket is not None else None

    def _note(self, *, in_flight: bool, **facts: JsonValue) -> None:
        """Note this message's `facts` on the ticket, whether a request for it is out with
        its outcome unknown, and the chat's newest known message id (kept after the entry
        is done: the floor of a restarted process)."""
        if self.ticket is None:
            return
        newest = self.sender.known(self.message.chat_id)
        facts = {self.key + name: value for name, value in facts.items()}
        facts[IN_FLIGHT] = in_flight
        self.ticket.note_with_chat(facts, {NEWEST: newest} if newest is not None else None)

    def _seed_floor(self) -> None:
        """What this process may not have seen in the chat yet: the newest message id known
        there before a restart, and the message the reply answers."""
        newest = self.ticket.chat.get(NEWEST) if self.ticket is not None else None
        for message_id in (newest, self.message.after):
            if isinstance(message_id, int):
                self.sender.note_message(self.message.chat_id, message_id)

    async def run(self) -> int | None:
        sender, message, stats = self.sender, self.message, self.sender.stats
        chat_id = message.chat_id
        self._seed_floor()
        known = self._fact("id")
        if isinstance(known, int):
            sender.note_message(chat_id, known)  # the floor of the parts that follow
            return known  # confirmed before a restart
        if self._fact("text") is not None:
            earlier = await self._earlier()
            if earlier is not False:
                return earlier
        floor = sender.known(chat_id)
        self._note(in_flight=True, floor=floor, text=self.text, html=self.parse_mode is not None)
        backoff = sender.config.backoff_initial
        attempt = flood_waits = 0
        while self.budget.allows(attempt):
            attempt += 1
            stats.calls += 1
            try:
                async with sender.limiter.slot(chat_id, group=message.group):
                    sent = await sender.bot.send_message(
                        chat_id=chat_id,
                        text=self.text,
                        parse_mode=self.parse_mode,
                        reply_parameters=(
                            ReplyParameters(
                                message_id=message.reply_to, allow_sending_without_reply=True
                            )
                            if message.reply_to is not None
                            else None
                        ),
                        message_thread_id=message.thread_id,
                    )
            except RetryAfter as exc:
                wait = retry_after_seconds(exc)
                stats.rate_limited += 1
                flood_waits += 1
                if not self.budget.waits(wait, flood_waits, sender.config):
                    log.error("telegram: chat %s flood-limited for %.0fs; block dropped",
                              chat_id, wait)  # fmt: skip
                    break
                log.warning("telegram: 429 for chat %s, retrying in %.1fs", chat_id, wait)
                attempt -= 1  # waiting out a 429 is Telegram's instruction, not a failure
                await asyncio.sleep(wait)
                continue
            except BadRequest as exc:
                if self.parse_mode is not None and "can't parse entities" in exc.message.lower():
                    log.warning("telegram: HTML refused (%s); resending as plain text", exc.message)
                    stats.plain_fallbacks += 1
                    self.parse_mode, self.text = None, html_to_plain(self.text)
                    self._note(in_flight=True, text=self.text, html=False)
                    attempt -= 1
                    continue
                self._refused(exc.message)
                return None
            except Forbidden as exc:
                self._refused(exc.message)
                return None
            except NetworkError as exc:
                if classify(exc) is Failure.AMBIGUOUS:
                    stats.ambiguous += 1
                    landed = await sender.resolve(
                        chat_id, floor, self.text, self.parse_mode, message.group, self.budget,
                        self._probe_tries(attempt),
                    )  # fmt: skip
                    if landed is None:
                        log.error(
                            "telegram: a message to chat %s may or may not have arrived (%s);"
                            " not resending it, to avoid a duplicate",
                            chat_id,
                            exc.message,
                        )
                        break
                    if landed is not False:
                        return self._landed(landed)
                    log.warning("telegram: send to chat %s lost in transit (%s); resending",
                                chat_id, exc.message)  # fmt: skip
                else:
                    log.warning("telegram: send to chat %s failed (%s); retrying in %.1fs",
                                chat_id, exc.message, backoff)  # fmt: skip
                stats.retries += 1
                backoff = await back_off(backoff, sender.config)
                continue
            except TelegramError as exc:
                log.error("telegram: send to chat %s failed: %s", chat_id, exc.message)
                break
            stats.delivered += 1
            sender.note_message(chat_id, sent.message_id)
            self._note(in_flight=False, id=sent.message_id)
            return sent.message_id
        stats.gave_up += 1
        log.error("telegram: gave up on a message to chat %s after %d attempts", chat_id, attempt)
        return None

    async def _earlier(self) -> int | bool | None:
        """An attempt noted by an earlier process, outcome unknown: whether it landed (its
        id), did not (False, so it is sent now), or Telegram would not say (None)."""
        sender, chat_id = self.sender, self.message.chat_id
        floor, text = self._fact("floor"), self._fact("text")
        assert isinstance(text, str)
        if not isinstance(floor, int):
            # Nothing was known in the chat then. This send was in flight, so it is settled
            # before anything else goes to the chat: no message of ours but this one can be
            # above what is known now.
            floor = sender.known(chat_id)
            if floor is None:
                return False  # nothing to probe from
        sender.note_message(chat_id, floor)
        sender.stats.ambiguous += 1
        parse_mode = ParseMode.HTML if self._fact("html") is True else None
        landed = await sender.resolve(
            chat_id, floor, text, parse_mode, self.message.group, self.budget, 3
        )
        if landed is None:
            sender.stats.gave_up += 1
            log.error("telegram: a message to chat %s sent before a restart may or may not have"
                      " arrived; not resending it, to avoid a duplicate", chat_id)  # fmt: skip
            return None
        if landed is False:
            log.info("telegram: a message to chat %s cut off by a restart is sent again", chat_id)
            return False
        return self._landed(landed)

    def _landed(self, message_id: int) -> int:
        self.sender.stats.probe_landed += 1
        self.sender.stats.delivered += 1
        self._note(in_flight=False, id=message_id)
        return message_id

    def _refused(self, reason: str) -> None:
        self.sender.stats.refused += 1
        log.error("telegram: chat %s refused a message for good (%s); it is dropped",
                  self.message.chat_id, reason)  # fmt: skip

    def _probe_tries(self, attempt: int) -> int:
        """Three probes; more for a send that was given more attempts than usual (a live
        reply's message, whose id the edits that follow need)."""
        attempts = self.budget.attempts or 0
        if attempts <= self.sender.config.send_attempts:
            return 3
        return max(3, attempts - attempt)
