"""Telegram's side of live replies and acks: posting, editing and deleting messages,
reactions on the user's message."""

from __future__ import annotations

import logging

from telegram import ReactionTypeEmoji
from telegram.error import TelegramError

from channels.outbox_store import Ticket
from channels.telegram.attempts import Budget
from channels.telegram.config import TelegramConfig
from channels.telegram.delivery import answered, is_group, thread_of
from channels.telegram.editing import Edit, edit_message
from channels.telegram.formatting import TELEGRAM_LIMIT, html_to_plain, render_html, utf16_len
from channels.telegram.reliability import ReliableSender
from hub.origin import ChannelRoute

log = logging.getLogger("agenthub.telegram")


class TelegramLive:
    """`LiveSurface` for Telegram over the plugin's `ReliableSender`."""

    def __init__(self, sender: ReliableSender, config: TelegramConfig) -> None:
        self.sender = sender
        self.config = config

    @property
    def edit_interval(self) -> float:
        return self.config.edit_interval

    def render(self, markdown: str) -> str | None:
        html = render_html(markdown)
        if not html_to_plain(html).strip() or utf16_len(html) > TELEGRAM_LIMIT:
            return None  # nothing to show yet (e.g. an empty code block), or too long
        return html

    async def post(
        self,
        route: ChannelRoute,
        text: str,
        *,
        reply: bool,
        plain: bool,
        ticket: Ticket | None = None,
    ) -> str | None:
        user_message = answered(route)
        message_id = await self.sender.send(
            route.chat_id,
            text,
            html=not plain,
            reply_to=user_message if reply else None,
            thread_id=thread_of(route),
            group=is_group(route),
            attempts=self.config.live_attempts,
            ticket=ticket,
            after=user_message,
        )
        return str(message_id) if message_id is not None else None

    async def edit(
        self, route: ChannelRoute, message_id: str, text: str, *, ticket: Ticket | None = None
    ) -> bool:
        outcome = await edit_message(
            self.sender,
            route.chat_id,
            int(message_id),
            text,
            html=True,
            group=is_group(route),
            budget=Budget.of(ticket, self.config.live_attempts, self.config),
        )
        return outcome is Edit.DONE

    async def delete(self, route: ChannelRoute, message_id: str) -> None:
        async with self.sender.lock(route.chat_id):
            try:
                await self.sender.bot.delete_message(route.chat_id, int(message_id))
            except TelegramError as exc:
                log.warning("telegram: deleting a status message failed: %s", exc.message)

    async def react(self, route: ChannelRoute, emoji: str | None) -> None:
        if not route.reply_to_message_id:
            return
        try:
            await self.sender.bot.set_message_reaction(
                route.chat_id,
                int(route.reply_to_message_id),
                [ReactionTypeEmoji(emoji)] if emoji else [],
            )
        except TelegramError as exc:
            log.info("telegram: reaction in chat %s failed: %s", route.chat_id, exc.message)
