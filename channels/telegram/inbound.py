"""Reading an incoming Telegram update: is it for us, who wrote it, is it a command.

Private chats are always addressed to the bot. In groups a message is addressed to it when
it mentions the bot (`@botname`, stripped from the text) or replies to one of the bot's
messages; a command in a group must name the bot (`/new@botname`) or reply to it. Other
group text comes back marked `addressed=False` (the group's activation and recent context
decide what happens to it); other group commands and files are ignored.
Entity offsets are UTF-16 code units, as Telegram counts them; offsets that are out of range
or split a character never raise.
"""

from __future__ import annotations

from dataclasses import dataclass

from telegram import Message, MessageEntity, Update

from channels.base import COMMANDS, Command
from channels.telegram.media import MediaRef, media_of, unread_kind


@dataclass(frozen=True, slots=True)
class Inbound:
    chat_id: str
    private: bool
    message_id: int
    user_id: str
    label: str
    text: str
    command: Command | None
    thread_id: int | None
    unknown_command: str | None = None
    # A file to download (photo, document, voice note, audio); the caption is `text`.
    media: MediaRef | None = None
    # A kind of media the bot does not read (video, sticker): the user is told.
    unread: str | None = None
    # False for a group's text message the bot was not asked about (`groups.py` decides).
    addressed: bool = True


def _span16(text: str, offset: int, length: int) -> tuple[bytes, int, int]:
    """`text` as UTF-16 bytes and the entity's byte range, clamped to the text."""
    data = text.encode("utf-16-le", "surrogatepass")
    start = min(max(offset, 0), len(data) // 2) * 2
    end = min(max(offset + max(length, 0), 0), len(data) // 2) * 2
    return data, start, max(start, end)


def _decode16(data: bytes) -> str:
    # Offsets that split a surrogate pair (an emoji) leave half of it: shown as U+FFFD.
    return data.decode("utf-16-le", "replace")


def _slice16(text: str, offset: int, length: int) -> str:
    data, start, end = _span16(text, offset, length)
    return _decode16(data[start:end])


def _cut16(text: str, offset: int, length: int) -> str:
    data, start, end = _span16(text, offset, length)
    return _decode16(data[:start] + data[end:])


def _label(message: Message) -> str:
    user = message.from_user
    if user is None:
        return ""
    name = user.full_name
    return f"{name} (@{user.username})" if user.username else name


class UnreadableMessage(ValueError):
    """The update parsed, but a field has a type Telegram never sends (e.g. a float id)."""


def _int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise UnreadableMessage(f"{what} is not an integer")
    return value


def parse_message(update: Update, bot_id: int, bot_username: str) -> Inbound | None:
    """The message if it is addressed to the bot and carries text or a file, else None
    (the caption is the text of a file). Raises `UnreadableMessage` for a message
    whose ids or text have the wrong type."""
    message = update.message
    if not isinstance(message, Message) or message.from_user is None:
        return None
    if message.from_user.is_bot:
        return None
    media = media_of(message) if message.text is None else None
    unread = unread_kind(message) if message.text is None and media is None else None
    raw_text = message.text if message.text is not None else (message.caption or "")
    if message.text is None and media is None and unread is None:
        return None
    if not isinstance(raw_text, str):
        raise UnreadableMessage("text is not a string")
    _int(message.message_id, "message_id")
    _int(message.chat.id, "chat.id")
    _int(message.from_user.id, "from.id")
    if message.message_thread_id is not None:
        _int(message.message_thread_id, "message_thread_id")
    text = raw_text
    private = message.chat.type == "private"
    handle = f"@{bot_username}".lower()
    replied_to_bot = (
        message.reply_to_message is not None
        and message.reply_to_message.from_user is not None
        and message.reply_to_message.from_user.id == bot_id
    )
    addressed = private or replied_to_bot
    command: Command | None = None
    unknown: str | None = None
    given = message.entities if message.text is not None else message.caption_entities
    entities = sorted(given, key=lambda e: e.offset, reverse=True)
    for entity in entities:
        word = _slice16(text, entity.offset, entity.length)
        if entity.type == MessageEntity.MENTION and word.lower() == handle:
            addressed = True
            text = _cut16(text, entity.offset, entity.length)
        elif entity.type == MessageEntity.BOT_COMMAND and entity.offset == 0:
            name, _, target = word[1:].partition("@")
            if target and target.lower() != bot_username.lower():
                return None  # a command for another bot in the same group
            if target:
                addressed = True
            if name.lower() in COMMANDS:
                command = next(c for c in COMMANDS if c == name.lower())
                text = _cut16(text, entity.offset, entity.length)
            elif name:
                unknown = name[:64]
    if not addressed and (command is not None or unknown is not None or message.text is None):
        return None  # a group's command or file for nobody in particular
    text = text.strip()
    if not text and command is None and unknown is None and media is None and unread is None:
        return None
    return Inbound(
        chat_id=str(message.chat.id),
        private=private,
        message_id=message.message_id,
        user_id=str(message.from_user.id),
        label=_label(message),
        text=text,
        command=command,
        thread_id=message.message_thread_id if message.is_topic_message else None,
        unknown_command=unknown if command is None else None,
        media=media,
        unread=unread,
        addressed=addressed,
    )
