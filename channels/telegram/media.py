"""Files sent to the bot, downloaded as hub attachments.

Photos (the largest size Telegram offers), documents (text files, PDFs, images sent as files),
voice notes and audio are fetched through `getFile` and handed on as `hub.attachments`
attachments with the caption as the turn's text; the hub's rules (`hub.attachments`,
`hub.transcribe`) decide what each becomes. Sizes and durations Telegram states are checked
before downloading, each refused with a message saying what to do. Videos are not read: the
user is told so instead of being ignored.
"""

from __future__ import annotations

import datetime as dtm
import logging
import mimetypes
import re
import warnings
from dataclasses import dataclass

from telegram import Bot, Message
from telegram.error import TelegramError
from telegram.warnings import PTBDeprecationWarning

from hub.attachments import (
    Attachment,
    MediaRefused,
    check_duration,
    check_size,
    kind_of,
)

log = logging.getLogger("agenthub.telegram")

_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*")

UNREAD_KINDS = {
    "video": "I can't watch videos yet: please describe it in words.",
    "video_note": "I can't watch videos yet: please write your message instead.",
    "sticker": "",
}


@dataclass(frozen=True, slots=True)
class MediaRef:
    """A file of a message, before it is downloaded."""

    file_id: str
    name: str
    size: int | None
    media_type: str
    duration: float | None = None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _seconds(media: object) -> float | None:
    """A voice note's or audio's duration, as an int (today) or a timedelta (PTB's future)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = getattr(media, "duration", None)
    if isinstance(value, dtm.timedelta):
        return value.total_seconds()
    seconds = _int(value)
    return float(seconds) if seconds is not None else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _guess(name: str, default: str) -> str:
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or default


def _clean(media_type: str) -> str:
    """`type/subtype` in lower case, parameters dropped; anything odd as octet-stream."""
    bare = media_type.split(";", 1)[0].strip().lower()
    return bare if _MEDIA_TYPE.fullmatch(bare) else "application/octet-stream"


def media_of(message: Message) -> MediaRef | None:
    """The file this message carries (photo, document, voice note or audio), if any."""
    if message.photo:
        largest = max(message.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
        if isinstance(largest.file_id, str):
            return MediaRef(largest.file_id, "photo.jpg", _int(largest.file_size), "image/jpeg")
    if message.document is not None and isinstance(message.document.file_id, str):
        document = message.document
        name = (_text(document.file_name) or "file")[:200]
        media_type = _text(document.mime_type) or _guess(name, "application/octet-stream")
        return MediaRef(document.file_id, name, _int(document.file_size), _clean(media_type))
    if message.voice is not None and isinstance(message.voice.file_id, str):
        voice = message.voice
        media_type = _clean(_text(voice.mime_type) or "audio/ogg")
        return MediaRef(
            voice.file_id, "voice.ogg", _int(voice.file_size), media_type, _seconds(voice)
        )
    if message.audio is not None and isinstance(message.audio.file_id, str):
        audio = message.audio
        name = (_text(audio.file_name) or "audio.mp3")[:200]
        media_type = _clean(_text(audio.mime_type) or _guess(name, "audio/mpeg"))
        return MediaRef(audio.file_id, name, _int(audio.file_size), media_type, _seconds(audio))
    return None


def unread_kind(message: Message) -> str | None:
    """The kind of media this message carries that the bot does not read, if any."""
    for kind in UNREAD_KINDS:
        if getattr(message, kind, None):
            return kind
    return None


async def download(bot: Bot, ref: MediaRef) -> Attachment:
    """The file as an attachment. Raises `MediaRefused` for a kind the hub does not read, a
    file over its size or duration limit, or a failed download."""
    kind = kind_of(Attachment(name=ref.name, media_type=ref.media_type, data=b""))
    check_size(ref.name, ref.size, kind)
    if kind == "audio":
        check_duration(ref.name, ref.duration)
    try:
        file = await bot.get_file(ref.file_id)
        data = bytes(await file.download_as_bytearray())
    except TelegramError as exc:
        log.warning("telegram: downloading %s failed: %s", ref.name, exc.message)
        raise MediaRefused(f"I couldn't download {ref.name}: please send it again.") from None
    check_size(ref.name, len(data), kind)
    return Attachment(name=ref.name, media_type=ref.media_type, data=data, duration=ref.duration)
