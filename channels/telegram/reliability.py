"""Sending a message exactly once over an unreliable network.

Every send to a chat holds that chat's lock, so sends to one chat never overlap. Failures
are sorted by what they say about the message:

- Telegram answered with an error (429, 5xx, a refused connection, a timeout before the
  request was fully written): the message was not accepted, so it is sent again: after
  `retry_after` for a 429, after an exponential backoff otherwise.
- "can't parse entities": sent again at once as plain text.
- The request was written but no answer came back (read timeout, connection dropped, a 504
  from a gateway in front of the Bot API): *ambiguous*. Peers simply never retry those (a
  possible loss). We ask Telegram instead:
  a message that landed is the bot's newest message in that chat, so its id is just above
  the highest id we knew when we sent it. We try `editMessageText` with the very same text
  on those few ids: "message is not modified" (or a successful edit) proves it landed; "not
  found" / "can't be edited" (someone else's message) on every candidate means it did not,
  and it is sent again. Editing a candidate can never touch another of our messages,
  because every earlier send to the chat finished (under the lock) with a known id below.
  If the probe itself cannot get an answer, the block is NOT resent (logged as lost): a
  duplicate is what users hate most, and the next block still follows. The highest id known
  includes the newest one confirmed before a restart and the user's message a reply answers;
  with none of these (nothing seen in the chat) there is nothing to probe and the block is
  resent.
- Telegram refused it for good (403: blocked by the user, kicked; 400: chat not found, and
  other refusals): logged once with Telegram's reason, and given up.

A send made for an outbox entry (a `Ticket`) is durable: the floor and text of its attempt
are noted on the entry before the request goes out (the entry is then in flight), its message
id once Telegram confirmed it, and with both the chat's newest known id (kept for the chat
after its entries are done); transient failures are retried until `send_retry_seconds` after
the entry was recorded (across restarts); and a process that finds an attempt noted but no id
probes for it first, before anything else is sent to the chat, exactly as for an ambiguous
send. A send without one has `send_attempts` tries.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from telegram import Bot
from telegram.error import BadRequest, TelegramError

from channels.outbox_store import Ticket
from channels.telegram.attempts import Budget, OutgoingMessage, SendAttempt, back_off
from channels.telegram.config import TelegramConfig
from channels.telegram.ratelimit import RateLimiter

log = logging.getLogger("agenthub.telegram")


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
    refused: int = 0


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

    def known(self, chat_id: str) -> int | None:
        """The highest message id seen in a chat, if any."""
        return self._known.get(chat_id)

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
        ticket: Ticket | None = None,
        part: int = 0,
        after: int | None = None,
    ) -> int | None:
        """Deliver one message (<= 4096 after parsing); its message id once Telegram accepted
        it, None when it was given up on. `part` names this message among the ticket's;
        `after` is a message known to be in the chat already (the one the reply answers)."""
        message = OutgoingMessage(chat_id, text, html, reply_to, thread_id, group, after)
        budget = Budget.of(ticket, attempts or self.config.send_attempts, self.config)
        async with self.lock(chat_id):
            return await SendAttempt(self, message, budget, ticket, f"{part}.").run()

    async def resolve(
        self, chat_id: str, floor: int | None, text: str, parse_mode: str | None,
        group: bool, budget: Budget, tries: int,
    ) -> int | bool | None:  # fmt: skip
        """The id an ambiguous send landed as; False when it did not land, None when
        Telegram would not tell us (within `tries` probes, or the budget's deadline)."""
        if floor is None or self.config.probe_window == 0:
            return False
        delay = max(self.config.probe_delay, 0.05)
        probes = 0
        while budget.allows(probes) if budget.attempts is None else probes < tries:
            probes += 1
            delay = await back_off(delay, self.config)
            landed = await self._probe(chat_id, floor, text, parse_mode, group)
            if landed is not None:
                return landed
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
