"""Files sent to the bot, turned into text for the agent.

Documents whose content is text (txt, md, csv, json, code…) and PDFs (text extracted with
pypdf) become text attached to the turn, under the caption. Every kind has limits (file size,
PDF pages, extracted characters), each refused with a message saying what to do. Photos,
voice notes, audio and video are not read yet: the user is told so instead of being ignored.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import PurePosixPath

from pypdf import PdfReader
from pypdf.errors import PyPdfError
from telegram import Bot, Document, Message
from telegram.error import TelegramError

from hub.errors import CodedError

log = logging.getLogger("agenthub.telegram")

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_PDF_PAGES = 100
MAX_TEXT_CHARS = 60_000
TEXT_SUFFIXES = frozenset(
    {
        ".txt", ".md", ".markdown", ".rst", ".csv", ".tsv", ".json", ".jsonl", ".yaml", ".yml",
        ".toml", ".ini", ".cfg", ".conf", ".log", ".xml", ".html", ".htm", ".css", ".js", ".ts",
        ".tsx", ".jsx", ".py", ".rb", ".go", ".rs", ".java", ".kt", ".c", ".h", ".cc", ".cpp",
        ".hpp", ".cs", ".php", ".sh", ".bash", ".zsh", ".sql", ".swift", ".lua", ".r", ".m",
        ".pl", ".scala", ".dart", ".vue", ".svelte", ".tex",
    }
)  # fmt: skip
UNREAD_KINDS = {
    "photo": "I can't see images yet: please describe it in words, or paste the text.",
    "voice": "I can't listen to voice notes yet: please write your message instead.",
    "audio": "I can't listen to audio yet: please write your message instead.",
    "video": "I can't watch videos yet: please describe it in words.",
    "video_note": "I can't watch videos yet: please write your message instead.",
    "sticker": "",
}


class MediaRefused(CodedError):
    """A file the bot will not read; the message tells the user why and what to do."""

    code = "media_refused"


@dataclass(frozen=True, slots=True)
class DocumentRef:
    file_id: str
    name: str
    size: int | None
    mime: str | None


def document_of(message: Message) -> DocumentRef | None:
    document: Document | None = message.document
    if document is None or not isinstance(document.file_id, str):
        return None
    size = document.file_size if isinstance(document.file_size, int) else None
    name = document.file_name if isinstance(document.file_name, str) else "file"
    mime = document.mime_type if isinstance(document.mime_type, str) else None
    return DocumentRef(document.file_id, name[:200], size, mime)


def unread_kind(message: Message) -> str | None:
    """The kind of media this message carries that the bot does not read, if any."""
    for kind in UNREAD_KINDS:
        if getattr(message, kind, None):
            return kind
    return None


def _is_pdf(ref: DocumentRef) -> bool:
    return ref.mime == "application/pdf" or ref.name.lower().endswith(".pdf")


def _is_text(ref: DocumentRef) -> bool:
    suffix = PurePosixPath(ref.name.lower()).suffix
    return suffix in TEXT_SUFFIXES or (ref.mime or "").startswith("text/")


def _too_big(ref: DocumentRef) -> MediaRefused:
    mib = MAX_FILE_BYTES // (1024 * 1024)
    return MediaRefused(
        f"{ref.name} is larger than {mib} MB: send a smaller file or paste the part you need."
    )


async def document_text(bot: Bot, ref: DocumentRef) -> str:
    """The file's text, fenced under its name; raises `MediaRefused`."""
    if not (_is_pdf(ref) or _is_text(ref)):
        raise MediaRefused(
            f"I can only read text files (txt, md, csv, json, code) and PDFs, not {ref.name}."
        )
    if ref.size is not None and ref.size > MAX_FILE_BYTES:
        raise _too_big(ref)
    try:
        file = await bot.get_file(ref.file_id)
        data = bytes(await file.download_as_bytearray())
    except TelegramError as exc:
        log.warning("telegram: downloading %s failed: %s", ref.name, exc.message)
        raise MediaRefused(f"I couldn't download {ref.name}: please send it again.") from None
    if len(data) > MAX_FILE_BYTES:
        raise _too_big(ref)
    text = _pdf_text(ref, data) if _is_pdf(ref) else data.decode("utf-8", "replace")
    text = text.replace("\x00", "").strip()
    if not text:
        raise MediaRefused(f"{ref.name} has no text I can read (a scanned PDF?).")
    if len(text) > MAX_TEXT_CHARS:
        raise MediaRefused(
            f"{ref.name} has {len(text):,} characters of text; I can take {MAX_TEXT_CHARS:,}."
            " Send the part you need."
        )
    fence = "`" * max(3, _longest_backtick_run(text) + 1)
    return f"[file: {ref.name}]\n{fence}\n{text}\n{fence}"


def _pdf_text(ref: DocumentRef, data: bytes) -> str:
    try:
        reader = PdfReader(io.BytesIO(data))
        if len(reader.pages) > MAX_PDF_PAGES:
            raise MediaRefused(
                f"{ref.name} has {len(reader.pages)} pages; I read at most {MAX_PDF_PAGES}."
                " Send the pages you need."
            )
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except (PyPdfError, ValueError, KeyError, TypeError) as exc:
        log.warning("telegram: reading the PDF %s failed: %s", ref.name, exc)
        raise MediaRefused(f"I couldn't read {ref.name} as a PDF.") from None


def _longest_backtick_run(text: str) -> int:
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return longest
