"""Files sent with a message, one rule set for every surface.

An `Attachment` is a file as a surface received it (name, media type, bytes). `kind_of` says
what the hub does with it: images go to the model as image input (stored under the data
directory, referenced from the session entry); text files and PDFs become text of the turn
(`document_text`); audio is transcribed (`hub.transcribe`). Every kind has limits (bytes,
PDF pages, characters), each refused as `MediaRefused` with a message saying what to do.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BeforeValidator, Field, PlainSerializer, StringConstraints

from hub.errors import CodedError
from hub.wire import WireModel

if TYPE_CHECKING:
    from hub.media_store import MediaStore

log = logging.getLogger("agenthub.attachments")

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_AUDIO_BYTES = 20 * 1024 * 1024
MAX_AUDIO_SECONDS = 600
MAX_PDF_PAGES = 100
MAX_TEXT_CHARS = 60_000
MAX_ATTACHMENTS = 8
IMAGE_TYPES = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
}
AUDIO_SUFFIXES = frozenset({".ogg", ".oga", ".opus", ".mp3", ".m4a", ".mp4", ".wav", ".webm"})
TEXT_SUFFIXES = frozenset(
    {
        ".txt", ".md", ".markdown", ".rst", ".csv", ".tsv", ".json", ".jsonl", ".yaml", ".yml",
        ".toml", ".ini", ".cfg", ".conf", ".log", ".xml", ".html", ".htm", ".css", ".js", ".ts",
        ".tsx", ".jsx", ".py", ".rb", ".go", ".rs", ".java", ".kt", ".c", ".h", ".cc", ".cpp",
        ".hpp", ".cs", ".php", ".sh", ".bash", ".zsh", ".sql", ".swift", ".lua", ".r", ".m",
        ".pl", ".scala", ".dart", ".vue", ".svelte", ".tex",
    }
)  # fmt: skip
TEXT_TYPES = frozenset(
    {"application/json", "application/xml", "application/x-yaml", "application/toml"}
)
WHAT_I_READ = (
    "I can only read text files (txt, md, csv, json, code), PDFs, images (JPEG, PNG, GIF, "
    "WebP) and audio"
)

Kind = Literal["image", "document", "audio"]


class MediaRefused(CodedError):
    """A file the hub will not take; the message tells the person why and what to do."""

    code = "media_refused"


def _strict_base64(value: object) -> object:
    if not isinstance(value, str):
        return value
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64 (standard alphabet, = padding, no newlines)") from None


# Bytes that travel as standard base64 text on the wire (strict: a stray character is an error).
Base64Data = Annotated[
    bytes,
    BeforeValidator(_strict_base64),
    PlainSerializer(lambda data: base64.b64encode(data).decode("ascii"), when_used="json"),
]
MediaType = Annotated[
    str,
    StringConstraints(max_length=127, pattern=r"^[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*$"),
]
FileName = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class Attachment(WireModel):
    """A file with a message: its name, media type and bytes (base64 on the wire). `duration`
    (seconds) when the surface knows it (a Telegram voice note)."""

    name: FileName
    media_type: MediaType
    data: Base64Data
    duration: float | None = Field(default=None, ge=0)


class AttachmentRef(WireModel):
    """A stored image, as a session entry names it: `id` is its file under the media directory."""

    id: str
    name: str
    media_type: str
    size: int


@dataclass(frozen=True, slots=True)
class TurnImage:
    """An image travelling with a turn to the model."""

    ref: AttachmentRef
    data: bytes


def _suffix(name: str) -> str:
    return PurePosixPath(name.lower()).suffix


def kind_of(attachment: Attachment) -> Kind:
    """What the hub does with `attachment`; raises `MediaRefused` for a kind it cannot read."""
    media_type, suffix = attachment.media_type, _suffix(attachment.name)
    if media_type in IMAGE_TYPES:
        return "image"
    if media_type == "application/pdf" or suffix == ".pdf":
        return "document"
    if media_type.startswith("audio/") or (
        media_type == "application/octet-stream" and suffix in AUDIO_SUFFIXES
    ):
        return "audio"
    if media_type.startswith("text/") or media_type in TEXT_TYPES or suffix in TEXT_SUFFIXES:
        return "document"
    if media_type.startswith("image/"):
        raise MediaRefused(f"{WHAT_I_READ}, not {attachment.name} ({media_type}): send it as JPEG.")
    raise MediaRefused(f"{WHAT_I_READ}, not {attachment.name} ({media_type}).")


def _mib(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MB"


def check_size(name: str, size: int | None, kind: Kind) -> None:
    """Refuse a file over its kind's byte limit (before downloading it, when the size is known)."""
    limit = {"image": MAX_IMAGE_BYTES, "document": MAX_FILE_BYTES, "audio": MAX_AUDIO_BYTES}[kind]
    if size is not None and size > limit:
        what = "a shorter recording" if kind == "audio" else "a smaller file"
        raise MediaRefused(
            f"{name} is larger than {_mib(limit)}: send {what} or paste the part you need."
        )


def check_duration(name: str, seconds: float | None) -> None:
    if seconds is not None and seconds > MAX_AUDIO_SECONDS:
        raise MediaRefused(
            f"{name} is {seconds / 60:.0f} minutes long; I transcribe at most "
            f"{MAX_AUDIO_SECONDS // 60} minutes. Send a shorter recording."
        )


def document_text(attachment: Attachment) -> str:
    """The text of a text file or PDF, fenced under its name; raises `MediaRefused`."""
    check_size(attachment.name, len(attachment.data), "document")
    is_pdf = attachment.media_type == "application/pdf" or _suffix(attachment.name) == ".pdf"
    if is_pdf:
        text = _pdf_text(attachment.name, attachment.data)
    else:
        text = attachment.data.decode("utf-8", "replace")
    text = text.replace("\x00", "").strip()
    if not text:
        raise MediaRefused(f"{attachment.name} has no text I can read (a scanned PDF?).")
    if len(text) > MAX_TEXT_CHARS:
        raise MediaRefused(
            f"{attachment.name} has {len(text):,} characters of text; I can take "
            f"{MAX_TEXT_CHARS:,}. Send the part you need."
        )
    fence = "`" * max(3, _longest_backtick_run(text) + 1)
    return f"[file: {attachment.name}]\n{fence}\n{text}\n{fence}"


def _pdf_text(name: str, data: bytes) -> str:
    # pypdf takes a while to import: only a hub that reads a PDF pays for it.
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if len(reader.pages) > MAX_PDF_PAGES:
            raise MediaRefused(
                f"{name} has {len(reader.pages)} pages; I read at most {MAX_PDF_PAGES}."
                " Send the pages you need."
            )
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except (PyPdfError, ValueError, KeyError, TypeError) as exc:
        log.warning("reading the PDF %s failed: %s", name, exc)
        raise MediaRefused(f"I couldn't read {name} as a PDF.") from None


def _longest_backtick_run(text: str) -> int:
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return longest


def join_text(text: str, more: str) -> str:
    """`more` under `text` (a caption), separated by a blank line."""
    return f"{text}\n\n{more}" if text.strip() else more


@dataclass(frozen=True, slots=True)
class PreparedTurn:
    """A message with its attachments read: text files and PDFs in `text`, images stored."""

    text: str
    images: tuple[TurnImage, ...]


def prepare_turn(
    text: str, attachments: Sequence[Attachment], store: MediaStore, agent_id: str
) -> PreparedTurn:
    """Apply the rules to every attachment, all or nothing: the first refusal raises
    `MediaRefused` before anything is stored. Audio must be transcribed first
    (`hub.transcribe.hear`)."""
    if len(attachments) > MAX_ATTACHMENTS:
        raise MediaRefused(
            f"{len(attachments)} files in one message; I take at most {MAX_ATTACHMENTS}."
        )
    documents: list[str] = []
    images: list[Attachment] = []
    for attachment in attachments:
        kind = kind_of(attachment)
        if kind == "audio":
            raise MediaRefused(f"{attachment.name}: audio must be transcribed first.")
        if kind == "image":
            check_size(attachment.name, len(attachment.data), "image")
            images.append(attachment)
        else:
            documents.append(document_text(attachment))
    for document in documents:
        text = join_text(text, document)
    stored = tuple(TurnImage(store.save(agent_id, a), a.data) for a in images)
    return PreparedTurn(text, stored)


NO_IMAGES_NOTICE = (
    "(This model can't see images, so I only read your text. Describe the image in words, "
    "or switch to a model that takes images.)\n\n"
)


def model_input(
    text: str, images: tuple[TurnImage, ...], sees_images: bool
) -> tuple[str, tuple[TurnImage, ...], str | None]:
    """What the model gets: the text and images as sent, or (a model that cannot see images)
    the text with a note naming the images, and the notice the person is shown first."""
    if not images or sees_images:
        return text, images, None
    names = ", ".join(image.ref.name for image in images)
    note = f"[The user sent {len(images)} image(s) you cannot see: {names}]"
    return join_text(text, note), (), NO_IMAGES_NOTICE
