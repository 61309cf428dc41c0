"""The hub's attachment rules (`hub.attachments`) and `Hub.submit(attachments=…)`: kinds,
limits with clear messages, strict base64, storage, and images travelling with the turn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest
from pydantic import ValidationError

from hub.attachments import (
    MAX_ATTACHMENTS,
    Attachment,
    MediaRefused,
    document_text,
    kind_of,
    prepare_turn,
)
from hub.errors import InvalidInputError
from hub.hub import Hub
from hub.media_store import MediaStore
from hub.model import ModelPart, ModelTurn, TextDelta
from hub.origin import Origin
from hub.sessions import MessageEntry
from hub.transcribe import hear, parse_transcribe_spec


def att(name: str, media_type: str, data: bytes = b"hello") -> Attachment:
    return Attachment(name=name, media_type=media_type, data=data)


class SeeingModel:
    """Records each turn; sees images when `accepts_images`."""

    def __init__(self, accepts_images: bool) -> None:
        self.accepts_images = accepts_images
        self.turns: list[ModelTurn] = []

    @property
    def name(self) -> str:
        return "seeing"

    async def stream(self, turn: ModelTurn) -> AsyncGenerator[ModelPart, None]:
        self.turns.append(turn)
        yield TextDelta("seen")


def test_kinds_by_media_type_and_name() -> None:
    assert kind_of(att("a.jpg", "image/jpeg")) == "image"
    assert kind_of(att("notes", "application/pdf")) == "document"
    assert kind_of(att("x.py", "application/octet-stream")) == "document"
    assert kind_of(att("data", "application/json")) == "document"
    assert kind_of(att("voice.ogg", "audio/ogg")) == "audio"
    assert kind_of(att("rec.m4a", "application/octet-stream")) == "audio"
    with pytest.raises(MediaRefused, match=r"not tool.exe \(application/x-msdownload\)\.$"):
        kind_of(att("tool.exe", "application/x-msdownload"))
    with pytest.raises(MediaRefused, match="send it as JPEG"):
        kind_of(att("IMG.heic", "image/heic"))


def test_wire_form_is_strict_base64_and_a_plain_media_type() -> None:
    good = Attachment.model_validate({"name": "a.txt", "mediaType": "text/plain", "data": "aGk="})
    assert good.data == b"hi"
    assert good.model_dump(mode="json")["data"] == "aGk="
    for data in ("aGk", "a G k =", "aGk=\n", "!!!!"):
        with pytest.raises(ValidationError, match="not valid base64"):
            Attachment.model_validate({"name": "a.txt", "mediaType": "text/plain", "data": data})
    for media_type in ("Text/Plain", "text", "text/plain; charset=utf-8", ""):
        with pytest.raises(ValidationError):
            Attachment.model_validate({"name": "a", "mediaType": media_type, "data": "aGk="})
    with pytest.raises(ValidationError):
        Attachment.model_validate({"name": "", "mediaType": "text/plain", "data": "aGk="})


def test_document_limits_each_say_what_to_do() -> None:
    with pytest.raises(MediaRefused, match="larger than 5 MB: send a smaller file"):
        document_text(att("big.txt", "text/plain", b"x" * (5 * 1024 * 1024 + 1)))
    with pytest.raises(MediaRefused, match="70,000 characters of text; I can take 60,000"):
        document_text(att("long.md", "text/markdown", b"a" * 70_000))
    with pytest.raises(MediaRefused, match="has no text I can read"):
        document_text(att("empty.txt", "text/plain", b"\x00 \n"))
    with pytest.raises(MediaRefused, match=r"couldn't read bad\.pdf as a PDF"):
        document_text(att("bad.pdf", "application/pdf", b"not a pdf"))
    assert document_text(att("a.py", "text/x-python", b"x = 1")) == "[file: a.py]\n```\nx = 1\n```"


def test_prepare_is_all_or_nothing_and_stores_images_once(data_dir: Path) -> None:
    store = MediaStore(data_dir)
    photo = att("p.png", "image/png", b"\x89PNG one")
    with pytest.raises(MediaRefused):
        prepare_turn("caption", [photo, att("x.exe", "application/x-msdownload")], store, "main")
    assert not (data_dir / "media").exists()
    too_many = [photo] * (MAX_ATTACHMENTS + 1)
    with pytest.raises(MediaRefused, match=f"I take at most {MAX_ATTACHMENTS}"):
        prepare_turn("", too_many, store, "main")
    big = att("big.png", "image/png", b"x" * (5 * 1024 * 1024 + 1))
    with pytest.raises(MediaRefused, match=r"big\.png is larger than 5 MB"):
        prepare_turn("", [big], store, "main")
    with pytest.raises(MediaRefused, match="transcribed first"):
        prepare_turn("", [att("v.ogg", "audio/ogg")], store, "main")
    prepared = prepare_turn("look", [photo, att("n.txt", "text/plain"), photo], store, "main")
    assert prepared.text == "look\n\n[file: n.txt]\n```\nhello\n```"
    first, second = prepared.images
    assert first.ref == second.ref and first.data == b"\x89PNG one"
    assert store.load("main", first.ref.id) == b"\x89PNG one"
    assert len(list((data_dir / "media" / "main").iterdir())) == 1
    for bad in ("../x", ".hidden", "a/b"):
        with pytest.raises(FileNotFoundError):
            store.load("main", bad)


async def test_hear_without_a_transcriber_refuses_and_passes_other_files() -> None:
    photo = att("p.png", "image/png")
    heard = await hear(None, "caption", [photo])
    assert (heard.text, heard.attachments, heard.transcripts) == ("caption", (photo,), ())
    with pytest.raises(MediaRefused, match="can't listen to voice notes"):
        await hear(None, "", [att("v.ogg", "audio/ogg")])
    with pytest.raises(ValueError, match="use openai:<model>"):
        parse_transcribe_spec("groq:whisper")
    assert parse_transcribe_spec(" openai:whisper-1 ") == "whisper-1"


@pytest.mark.parametrize("sees", [True, False])
async def test_submit_carries_images_to_the_model_and_the_session(
    data_dir: Path, sees: bool
) -> None:
    model = SeeingModel(accepts_images=sees)
    hub = Hub(data_dir, lambda: model)
    try:
        agent = hub.default_agent
        photo = att("cat.jpg", "image/jpeg", b"\xff\xd8 cat")
        hub.submit("main", "", Origin(surface="web"), attachments=[photo])
        await agent.wait_idle()
        (turn,) = model.turns
        user, reply = [e for e in agent.history() if isinstance(e, MessageEntry)]
        (ref,) = user.attachments
        assert user.text == "" and ref.name == "cat.jpg"
        assert user.model_dump(mode="json")["attachments"][0]["mediaType"] == "image/jpeg"
        if sees:
            assert turn.text == "" and [i.data for i in turn.images] == [b"\xff\xd8 cat"]
            assert reply.text == "seen"
        else:
            assert turn.images == ()
            assert turn.text == "[The user sent 1 image(s) you cannot see: cat.jpg]"
            assert reply.text.startswith("(This model can't see images")
            assert reply.text.endswith("seen")
        # Without images, empty text is still refused; a text entry has no attachments key.
        with pytest.raises(InvalidInputError, match="empty"):
            hub.submit("main", " ", Origin(surface="web"))
        hub.submit("main", "plain", Origin(surface="web"))
        await agent.wait_idle()
        plain = [e for e in agent.history() if isinstance(e, MessageEntry)][-2]
        assert "attachments" not in plain.model_dump(mode="json")
    finally:
        await hub.close()


async def test_images_collected_into_one_turn_and_not_steered(data_dir: Path) -> None:
    gate, started = asyncio.Event(), asyncio.Event()

    class Slow(SeeingModel):
        async def stream(self, turn: ModelTurn) -> AsyncGenerator[ModelPart, None]:
            self.turns.append(turn)
            started.set()
            yield TextDelta("…")
            await gate.wait()

    model = Slow(accepts_images=True)
    hub = Hub(data_dir, lambda: model)
    try:
        web = Origin(surface="web")
        hub.submit("main", "first", web)
        await started.wait()
        one, two = att("1.png", "image/png", b"1"), att("2.png", "image/png", b"2")
        hub.submit("main", "a", web, mode="steer", attachments=[one])
        hub.submit("main", "b", web, mode="collect", attachments=[two])
        gate.set()
        await hub.default_agent.wait_idle()
        first, merged = model.turns
        assert first.images == ()
        assert merged.text == "a\n\nb"
        assert [i.data for i in merged.images] == [b"1", b"2"]
    finally:
        await hub.close()


def test_earlier_images_are_named_in_the_model_history() -> None:
    from pydantic_ai.messages import ModelRequest, UserPromptPart

    from hub.attachments import AttachmentRef
    from hub.providers.history import to_model_messages

    ref = AttachmentRef(id="ab.png", name="cat.png", media_type="image/png", size=3)
    entries = [
        MessageEntry(id="m1", run_id="r1", seq=1, role="user", text="look", attachments=(ref,)),
        MessageEntry(id="m2", run_id="r1", seq=2, role="assistant", text="a cat"),
        MessageEntry(id="m3", run_id="r2", seq=3, role="user", text="", attachments=(ref,)),
    ]
    first, _, last = to_model_messages(entries)
    assert isinstance(first, ModelRequest) and isinstance(last, ModelRequest)
    (part,) = first.parts
    assert isinstance(part, UserPromptPart)
    assert part.content == "look\n\n[image sent earlier: cat.png]"
    (part,) = last.parts
    assert isinstance(part, UserPromptPart) and part.content == "[image sent earlier: cat.png]"
