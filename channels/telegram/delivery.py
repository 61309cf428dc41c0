"""Outbound to Telegram: Markdown rendered to HTML and sent through the `ReliableSender`,
plus the best-effort extras (typing indicator)."""

from __future__ import annotations

import logging

from telegram import Bot
from telegram.constants import ChatAction
from telegram.error import TelegramError

from channels.outbox_store import Ticket
from channels.telegram.formatting import (
    TELEGRAM_LIMIT,
    html_to_plain,
    plain_chunks,
    render_html,
    utf16_len,
)
from channels.telegram.reliability import ReliableSender
from hub.origin import ChannelRoute

log = logging.getLogger("agenthub.telegram")


def thread_of(route: ChannelRoute) -> int | None:
    return int(route.thread_id) if route.thread_id else None


def is_group(route: ChannelRoute) -> bool:
    return route.chat_id.startswith("-")


def answered(route: ChannelRoute) -> int | None:
    """The user's message the route's reply answers (a message known to be in the chat)."""
    return int(route.reply_to_message_id) if route.reply_to_message_id else None


async def deliver(
    sender: ReliableSender,
    route: ChannelRoute,
    text: str,
    *,
    plain: bool,
    reply: bool,
    ticket: Ticket | None = None,
) -> bool:
    """Send Markdown (or plain) `text` to the route's chat; True when all of it arrived.
    Each message it takes is a numbered part of the `ticket` (a restart resumes there)."""
    html = not plain
    if plain:
        chunks = plain_chunks(text)
    else:
        rendered = render_html(text)
        if utf16_len(rendered) <= TELEGRAM_LIMIT:
            chunks = [rendered] if rendered.strip() else []
        else:
            # Only text that did not come through the aggregator can get here.
            log.warning("telegram: formatted text too long; sending it as plain text")
            chunks, html = plain_chunks(html_to_plain(rendered)), False
    delivered = True
    user_message = answered(route)
    reply_to = user_message if reply else None
    for index, chunk in enumerate(chunks):
        sent = await sender.send(
            route.chat_id,
            chunk,
            html=html,
            reply_to=reply_to if index == 0 else None,
            thread_id=thread_of(route),
            group=is_group(route),
            ticket=ticket,
            part=index,
            after=user_message,
        )
        delivered = delivered and sent is not None
    return delivered


async def show_typing(bot: Bot, route: ChannelRoute) -> None:
    try:
        await bot.send_chat_action(
            chat_id=route.chat_id, action=ChatAction.TYPING, message_thread_id=thread_of(route)
        )
    except TelegramError as exc:
        log.debug("telegram: typing indicator for chat %s failed: %s", route.chat_id, exc)
