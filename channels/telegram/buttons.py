"""Questions with buttons (inline keyboards) and the presses that answer them."""

from __future__ import annotations

import logging

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import TelegramError

from channels.base import ChannelMessage, Choice
from channels.telegram.delivery import thread_of
from channels.telegram.policy import CHANNEL
from hub.origin import ChannelRoute

log = logging.getLogger("agenthub.telegram")


async def ask(bot: Bot, route: ChannelRoute, text: str, choices: list[Choice]) -> str | None:
    """Send `text` with one button per choice in a row; the message id, or None."""
    keyboard = InlineKeyboardMarkup(
        [[InlineKeyboardButton(c.label, callback_data=c.data[:64])] for c in choices]
    )
    try:
        sent = await bot.send_message(
            chat_id=route.chat_id,
            text=text,
            reply_markup=keyboard,
            message_thread_id=thread_of(route),
        )
    except TelegramError as exc:
        log.warning("telegram: a question to chat %s could not be sent: %s", route.chat_id, exc)
        return None
    return str(sent.message_id)


async def settle(bot: Bot, route: ChannelRoute, message_id: str, text: str) -> None:
    """Show `text` instead of the question, buttons removed."""
    try:
        await bot.edit_message_text(chat_id=route.chat_id, message_id=int(message_id), text=text)
    except TelegramError as exc:
        log.info("telegram: question %s in chat %s not updated: %s", message_id, route.chat_id, exc)


def pressed(update: Update) -> ChannelMessage | None:
    """The button press in `update` as a message for the manager (None: not a press)."""
    query = update.callback_query
    if query is None or query.data is None or query.message is None:
        return None
    chat = query.message.chat
    thread = getattr(query.message, "message_thread_id", None)
    return ChannelMessage(
        route=ChannelRoute(
            channel=CHANNEL,
            chat_id=str(chat.id),
            user_id=str(query.from_user.id),
            thread_id=str(thread) if thread is not None else None,
            chat_kind="private" if chat.type == "private" else "group",
        ),
        text="",
        sender_label=query.from_user.full_name,
        choice=query.data,
    )


async def acknowledge(bot: Bot, update: Update) -> None:
    """Stop the button's spinner (the answer itself comes as a message)."""
    if update.callback_query is None:
        return
    try:
        await bot.answer_callback_query(update.callback_query.id)
    except TelegramError as exc:
        log.debug("telegram: press %s not acknowledged: %s", update.callback_query.id, exc)
