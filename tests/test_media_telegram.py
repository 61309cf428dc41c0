"""Photos, images sent as files and voice notes from Telegram, end to end: the real
python-telegram-bot against the local Bot API server (getFile and downloads), the real openai
client (through pydantic-ai, and for transcription) against the local OpenAI stand-in."""

from __future__ import annotations

import base64
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.model import Model
from hub.providers import ModelConfig, build_model
from hub.sessions import MessageEntry
from hub.transcribe import Transcriber
from tests.fake_openai import FakeOpenAI, Fault, Reply
from tests.telegram_rig import Rig, ScriptedModel, telegram_rig, until

CHAT = 1001
JPEG = b"\xff\xd8\xff\xe0 a photo, large size" + bytes(range(256)) * 4


@pytest.fixture
async def openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(default=Reply(chunks=("A red", " bicycle."))) as server:
        yield server


def openai_model(server: FakeOpenAI, **config: object) -> Model:
    return build_model(
        ModelConfig.model_validate(
            {"spec": "openai:gpt-4o-mini", "openai_base_url": server.base_url, **config}
        )
    )


def last_user_content(server: FakeOpenAI) -> object:
    user = [m for m in server.requests[-1].messages if m["role"] == "user"]
    return user[-1]["content"]


def user_entries(rig: Rig) -> list[MessageEntry]:
    return [e for e in rig.agent.history() if isinstance(e, MessageEntry) and e.role == "user"]


async def run_done(rig: Rig) -> None:
    await until(lambda: rig.agent.last_run is not None, "the run")
    await rig.settle()


async def test_a_photo_with_a_caption_reaches_the_model_as_an_image_part(
    data_dir: Path, openai: FakeOpenAI
) -> None:
    async with telegram_rig(data_dir, openai_model(openai)) as rig:
        await rig.api.user_sends("photo", content=JPEG, caption="what is this?")
        await run_done(rig)
        content = last_user_content(openai)
        assert isinstance(content, list)
        text, image = content
        assert text == {"type": "text", "text": "what is this?"}
        assert isinstance(image, dict) and image["type"] == "image_url"
        url = image["image_url"]["url"]
        # The largest size, not the preview Telegram lists first.
        assert url == "data:image/jpeg;base64," + base64.b64encode(JPEG).decode()
        assert rig.api.texts_in(CHAT) == ["A red bicycle."]
        (entry,) = user_entries(rig)
        assert entry.text == "what is this?"
        (ref,) = entry.attachments
        assert (ref.name, ref.media_type, ref.size) == ("photo.jpg", "image/jpeg", len(JPEG))
        stored = data_dir / "media" / "main" / ref.id
        assert stored.read_bytes() == JPEG
        assert stat.S_IMODE(stored.stat().st_mode) == 0o600
        assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
        # History carries the reference, never the bytes.
        assert "media" not in entry.model_dump_json() or ref.id in entry.model_dump_json()
        assert base64.b64encode(JPEG).decode() not in entry.model_dump_json()


async def test_an_image_sent_as_a_file_without_caption_is_an_image_part(
    data_dir: Path, openai: FakeOpenAI
) -> None:
    png = b"\x89PNG\r\n\x1a\n a screenshot"
    async with telegram_rig(data_dir, openai_model(openai)) as rig:
        await rig.api.user_sends(
            "document", content=png, file_name="screen.png", mime_type="image/png"
        )
        await run_done(rig)
        content = last_user_content(openai)
        assert content == [
            {
                "type": "image_url",
                "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()},
            }
        ]
        (entry,) = user_entries(rig)
        assert entry.text == "" and entry.attachments[0].name == "screen.png"


async def test_a_model_without_image_input_says_so_and_answers_the_caption(
    data_dir: Path, openai: FakeOpenAI
) -> None:
    async with telegram_rig(data_dir, openai_model(openai, image_input=False)) as rig:
        await rig.api.user_sends("photo", content=JPEG, caption="what is this?")
        await run_done(rig)
        content = last_user_content(openai)
        assert content == ("what is this?\n\n[The user sent 1 image(s) you cannot see: photo.jpg]")
        (reply,) = rig.api.texts_in(CHAT)
        assert reply.startswith("(This model can't see images, so I only read your text.")
        assert reply.endswith("A red bicycle.")


async def test_a_voice_note_is_transcribed_shown_and_answered(
    data_dir: Path, openai: FakeOpenAI
) -> None:
    ogg = b"OggS\x00\x02 a voice note"
    async with telegram_rig(data_dir, openai_model(openai)) as rig:
        rig.hub.transcriber = Transcriber(
            "openai:whisper-1", api_key="sk-test", base_url=openai.base_url
        )
        await rig.api.user_sends("voice", content=ogg)
        await run_done(rig)
        (upload,) = openai.transcriptions
        assert (upload.model, upload.file_name, upload.content) == ("whisper-1", "voice.ogg", ogg)
        assert upload.media_type == "audio/ogg"
        assert last_user_content(openai) == "Please remind me to buy milk."
        heard, reply = rig.api.texts_in(CHAT)
        assert heard == "🎙 Heard: “Please remind me to buy milk.”"
        assert reply == "A red bicycle."
        (entry,) = user_entries(rig)
        assert entry.text == "Please remind me to buy milk."


async def test_audio_with_a_caption_and_a_long_transcript_shown_short(
    data_dir: Path, openai: FakeOpenAI
) -> None:
    words = "word " * 200
    openai.enqueue_transcripts(words)
    async with telegram_rig(data_dir, ScriptedModel("ok")) as rig:
        rig.hub.transcriber = Transcriber(
            "openai:whisper-1", api_key=None, base_url=openai.base_url
        )
        await rig.api.user_sends(
            "audio",
            content=b"ID3 mp3",
            file_name="memo.mp3",
            mime_type="audio/mpeg",
            caption="summarise this",
        )
        await run_done(rig)
        heard, reply = rig.api.texts_in(CHAT)
        assert reply == "ok"
        assert heard.startswith("🎙 Heard: “word word") and heard.endswith("…”")
        assert len(heard) < 320
        (entry,) = user_entries(rig)
        assert entry.text == "summarise this\n\n" + words.strip()
        assert openai.transcriptions[0].file_name == "memo.mp3"


async def test_oversize_long_and_failed_media_get_a_clear_message(
    data_dir: Path, openai: FakeOpenAI
) -> None:
    # The openai client retries twice: three faults make the failure stick.
    fault = Fault(500, "whisper exploded at http://10.1.2.3:9000")
    openai.enqueue_transcripts(fault, fault, fault)
    async with telegram_rig(data_dir, ScriptedModel()) as rig:
        rig.hub.transcriber = Transcriber(
            "openai:whisper-1", api_key=None, base_url=openai.base_url
        )
        await rig.api.user_sends("photo", content=JPEG, size=50_000_000)
        await until(lambda: len(rig.api.replies_in(CHAT)) == 1, "the photo refusal")
        await rig.api.user_sends("voice", content=b"OggS", duration=3600)
        await until(lambda: len(rig.api.replies_in(CHAT)) == 2, "the duration refusal")
        await rig.api.user_sends("voice", content=b"OggS")
        await until(lambda: len(rig.api.replies_in(CHAT)) == 3, "the transcription failure")
        await rig.api.user_sends(
            "document", content=b"GIF89a", file_name="x.heic", mime_type="image/heic"
        )
        await until(lambda: len(rig.api.replies_in(CHAT)) == 4, "the type refusal")
        big, long, failed, heic = rig.api.texts_in(CHAT)
        assert big == (
            "[Error] photo.jpg is larger than 5 MB: send a smaller file or paste the part you need."
        )
        assert long.startswith("[Error] voice.ogg is 60 minutes long; I transcribe at most 10")
        assert failed.startswith("[Error] Transcribing voice.ogg failed")
        assert "answered 500" in failed and "try again" in failed
        assert "10.1.2.3" not in failed and "127.0.0.1" not in failed
        assert "not x.heic (image/heic): send it as JPEG" in heic
        assert rig.agent.last_run is None
        # Refused before downloading, by the size and duration Telegram states: all but one.
        assert rig.api.calls.get("download", 0) == 1


async def test_a_failed_download_is_refused_clearly(data_dir: Path) -> None:
    async with telegram_rig(data_dir, ScriptedModel()) as rig:
        rig.api.fault_methods.add("download")
        rig.api.faults.extend(["502"])
        await rig.api.user_sends("photo", content=JPEG, caption="look")
        await until(lambda: len(rig.api.replies_in(CHAT)) == 1, "the refusal")
        assert rig.api.texts_in(CHAT) == [
            "[Error] I couldn't download photo.jpg: please send it again."
        ]
        assert rig.agent.last_run is None
