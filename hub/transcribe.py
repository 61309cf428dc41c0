"""Voice notes and audio to text, through an OpenAI-compatible `/v1/audio/transcriptions`.

`AGENTHUB_TRANSCRIBE_MODEL` names the model (`openai:whisper-1`; Groq's and local whisper
servers speak the same API through `OPENAI_BASE_URL`). `hear` turns the audio attachments of a
message into its text before `Hub.submit`; the surface shows the person what was heard
(`heard_quote`). Without a transcriber, audio is refused with a message saying so.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hub.attachments import (
    Attachment,
    MediaRefused,
    check_duration,
    check_size,
    join_text,
    kind_of,
)
from hub.errors import CodedError

if TYPE_CHECKING:
    from openai import AsyncOpenAI

log = logging.getLogger("agenthub.transcribe")

QUOTE_CHARS = 300
NOT_SET_UP = (
    "I can't listen to voice notes here: transcription is not set up (the owner sets "
    "AGENTHUB_TRANSCRIBE_MODEL, e.g. openai:whisper-1). Please write your message instead."
)


class TranscriptionError(CodedError):
    """The speech-to-text service failed; the message says what to do (never where it is)."""

    code = "transcription_failed"


def parse_transcribe_spec(spec: str) -> str:
    """The model name of `openai:<model>`; raises ValueError for any other form."""
    provider, _, model = spec.strip().partition(":")
    if provider.strip().lower() != "openai" or not model.strip():
        raise ValueError(
            f"transcribe model {spec!r}: use openai:<model>, e.g. openai:whisper-1 (any "
            "OpenAI-compatible server through OPENAI_BASE_URL)"
        )
    return model.strip()


class Transcriber:
    """Speech to text with the official openai client (made on first use)."""

    def __init__(
        self, spec: str, *, api_key: str | None, base_url: str | None, timeout: float = 120.0
    ) -> None:
        self.model = parse_transcribe_spec(spec)
        self.spec = spec.strip()
        self._api_key = api_key
        self._base_url = base_url
        self._timeout = timeout
        self._client: AsyncOpenAI | None = None

    def _openai(self) -> AsyncOpenAI:
        if self._client is None:
            from openai import AsyncOpenAI

            # A local whisper server needs no key, but the client insists on one.
            self._client = AsyncOpenAI(
                api_key=self._api_key or "no-key",
                base_url=self._base_url,
                timeout=self._timeout,
                max_retries=2,
            )
        return self._client

    async def transcribe(self, attachment: Attachment) -> str:
        """The words in `attachment`; raises `TranscriptionError`."""
        import openai

        file = (attachment.name, attachment.data, attachment.media_type)
        try:
            result = await self._openai().audio.transcriptions.create(model=self.model, file=file)
        except openai.APIStatusError as exc:
            log.warning("transcribing %s failed: HTTP %d", attachment.name, exc.status_code)
            hint = (
                "check the transcription key (OPENAI_API_KEY)"
                if exc.status_code in (401, 403)
                else "try again in a moment"
            )
            raise TranscriptionError(
                f"Transcribing {attachment.name} failed (the speech-to-text service answered "
                f"{exc.status_code}): {hint}."
            ) from None
        except openai.APIError as exc:
            log.warning("transcribing %s failed: %s", attachment.name, type(exc).__name__)
            raise TranscriptionError(
                f"Transcribing {attachment.name} failed (the speech-to-text service could not "
                "be reached): try again in a moment."
            ) from None
        return result.text.strip()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


@dataclass(frozen=True, slots=True)
class Heard:
    """A message with its audio transcribed: `text` carries the transcripts, `attachments`
    the rest, `transcripts` what was heard (to show the person)."""

    text: str
    attachments: tuple[Attachment, ...]
    transcripts: tuple[str, ...]


async def hear(
    transcriber: Transcriber | None, text: str, attachments: Sequence[Attachment]
) -> Heard:
    """Transcribe the audio among `attachments` into the text (under a caption). Raises
    `MediaRefused` (no transcriber, too long, too big, nothing heard) or `TranscriptionError`."""
    audio = [a for a in attachments if kind_of(a) == "audio"]
    if not audio:
        return Heard(text, tuple(attachments), ())
    if transcriber is None:
        raise MediaRefused(NOT_SET_UP)
    for attachment in audio:
        check_size(attachment.name, len(attachment.data), "audio")
        check_duration(attachment.name, attachment.duration)
    transcripts: list[str] = []
    for attachment in audio:
        words = await transcriber.transcribe(attachment)
        if not words:
            raise MediaRefused(
                f"I couldn't hear any words in {attachment.name}: please try again or write."
            )
        transcripts.append(words)
    for words in transcripts:
        text = join_text(text, words)
    rest = tuple(a for a in attachments if kind_of(a) != "audio")
    return Heard(text, rest, tuple(transcripts))


def heard_quote(transcripts: Sequence[str]) -> str:
    """What was heard, quoted and short, so the person can see it was understood."""
    words = " ".join(" ".join(t.split()) for t in transcripts)
    if len(words) > QUOTE_CHARS:
        words = words[: QUOTE_CHARS - 1].rstrip() + "…"
    return f"🎙 Heard: “{words}”"
