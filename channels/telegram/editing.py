"""Editing a message in place, for live replies.

An edit carries the message's whole text, so repeating it is harmless: every failure that
leaves the outcome unknown (5xx, timeouts, dropped connections) is simply retried, and "message
is not modified" means the text is already there. A 429 is waited out while holding the chat's
lock, so nothing else is sent or edited in that chat until `retry_after` has passed.
"""

from __future__ import annotations

import asyncio
import logging
from enum import Enum

from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from channels.telegram.attempts import Budget, back_off, retry_after_seconds
from channels.telegram.formatting import html_to_plain
from channels.telegram.reliability import ReliableSender

log = logging.getLogger("agenthub.telegram")


class Edit(Enum):
    DONE = "done"  # the message shows the text (edited now, or already)
    GONE = "gone"  # the message cannot be edited any more (deleted, too old)
    FAILED = "failed"  # gave up after the attempts


async def edit_message(
    sender: ReliableSender,
    chat_id: str,
    message_id: int,
    text: str,
    *,
    html: bool,
    group: bool,
    budget: Budget,
) -> Edit:
    """Make message `message_id` show `text` (<= 4096 after parsing), trying as long as the
    `budget` allows."""
    parse_mode: str | None = ParseMode.HTML if html else None
    backoff = sender.config.backoff_initial
    stats = sender.stats
    failures = flood_waits = 0
    async with sender.lock(chat_id):
        while budget.allows(failures):
            stats.edit_calls += 1
            try:
                async with sender.limiter.slot(chat_id, group=group):
                    await sender.bot.edit_message_text(
                        text=text, chat_id=chat_id, message_id=message_id, parse_mode=parse_mode
                    )
            except RetryAfter as exc:
                wait = retry_after_seconds(exc)
                stats.rate_limited += 1
                flood_waits += 1
                if not budget.waits(wait, flood_waits, sender.config):
                    break
                await asyncio.sleep(wait)
                continue
            except BadRequest as exc:
                reason = exc.message.lower()
                if "not modified" in reason:
                    sender.note_message(chat_id, message_id)
                    return Edit.DONE
                if parse_mode is not None and "can't parse entities" in reason:
                    log.warning("telegram: HTML refused (%s); editing as plain text", exc.message)
                    stats.plain_fallbacks += 1
                    parse_mode, text = None, html_to_plain(text)
                    continue
                if "not found" in reason or "can't be edited" in reason:
                    log.warning("telegram: message %d in chat %s is gone", message_id, chat_id)
                    return Edit.GONE
                log.error("telegram: chat %s refused an edit: %s", chat_id, exc.message)
                break
            except Forbidden as exc:
                log.warning("telegram: cannot edit in chat %s: %s", chat_id, exc.message)
                return Edit.GONE
            except NetworkError as exc:
                failures += 1
                stats.retries += 1
                log.info("telegram: edit in chat %s failed (%s); retrying", chat_id, exc.message)
                backoff = await back_off(backoff, sender.config)
                continue
            except TelegramError as exc:
                log.error("telegram: edit in chat %s failed: %s", chat_id, exc.message)
                break
            stats.edits += 1
            # A message of ours: a later send's probe floor must not be below it (after a
            # restart, a resumed final edit may be the first thing known in the chat).
            sender.note_message(chat_id, message_id)
            return Edit.DONE
    log.error("telegram: gave up editing message %d in chat %s", message_id, chat_id)
    return Edit.FAILED
