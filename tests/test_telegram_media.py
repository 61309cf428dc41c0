"""Files sent to the bot: text files and PDFs become text of the turn, videos get a clear
notice, oversize files a clear refusal (photos and voice notes: tests/test_media_telegram.py).
Real python-telegram-bot against the local Bot API server (getFile and downloads)."""

from __future__ import annotations

from pathlib import Path

from tests.telegram_rig import ScriptedModel, telegram_rig, until

CHAT = 1001


def pdf_with_text(*pages: str) -> bytes:
    """A small valid PDF whose pages show `pages` (Helvetica, one line each)."""
    objects: list[bytes] = []
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    font_ref = 3 + 2 * len(pages)
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font_ref} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def user_turns(rig_agent_history: list[object]) -> list[str]:
    return [
        getattr(e, "text", "")
        for e in rig_agent_history
        if getattr(e, "type", "") == "message" and getattr(e, "role", "") == "user"
    ]


async def test_a_code_file_with_a_caption_becomes_the_turns_text(data_dir: Path) -> None:
    async with telegram_rig(data_dir, ScriptedModel("Read it.")) as rig:
        code = b"def add(a, b):\n    return a + b  # ``` inside\n"
        await rig.api.user_sends(
            "document", content=code, file_name="add.py", caption="what does this do?"
        )
        await until(lambda: rig.agent.last_run is not None, "the run")
        await rig.settle()
        turns = user_turns(list(rig.agent.history()))
        assert len(turns) == 1
        assert turns[0].startswith("what does this do?\n\n[file: add.py]\n````\n")
        assert "return a + b  # ``` inside" in turns[0]
        assert turns[0].endswith("\n````")
        assert rig.api.texts_in(CHAT) == ["Read it."]


async def test_a_pdf_becomes_text(data_dir: Path) -> None:
    async with telegram_rig(data_dir, ScriptedModel("Summarised.")) as rig:
        pdf = pdf_with_text("First page says hello", "Second page says goodbye")
        await rig.api.user_sends(
            "document", content=pdf, file_name="notes.pdf", mime_type="application/pdf"
        )
        await until(lambda: rig.agent.last_run is not None, "the run")
        await rig.settle()
        (turn,) = user_turns(list(rig.agent.history()))
        assert turn.startswith("[file: notes.pdf]")
        assert "First page says hello" in turn
        assert "Second page says goodbye" in turn


async def test_oversize_unknown_and_broken_files_are_refused_clearly(data_dir: Path) -> None:
    async with telegram_rig(data_dir, ScriptedModel()) as rig:
        await rig.api.user_sends("document", content=b"x", file_name="big.txt", size=50_000_000)
        await rig.api.user_sends("document", content=b"MZ\x00", file_name="tool.exe")
        await rig.api.user_sends(
            "document", content=b"not a pdf", file_name="bad.pdf", mime_type="application/pdf"
        )
        await rig.api.user_sends("document", content=b"a" * 70_000, file_name="long.txt")
        await until(lambda: len(rig.api.replies_in(CHAT)) == 4, "four refusals")
        big, exe, bad, long = rig.api.texts_in(CHAT)
        assert big.startswith("[Error] big.txt is larger than 5 MB")
        assert "send a smaller file" in big
        assert "only read text files" in exe
        assert bad == "[Error] I couldn't read bad.pdf as a PDF."
        assert "70,000 characters" in long and "Send the part you need" in long
        assert rig.agent.last_run is None


async def test_videos_and_unset_transcription_get_a_notice_not_silence(data_dir: Path) -> None:
    async with telegram_rig(data_dir, ScriptedModel()) as rig:
        await rig.api.user_sends("video", content=b"\x00\x00\x00\x18ftyp")
        await rig.api.user_sends("voice", content=b"OggS")
        await until(lambda: len(rig.api.replies_in(CHAT)) == 2, "two notices")
        video, voice = rig.api.texts_in(CHAT)
        assert "can't watch videos" in video
        assert "can't listen to voice notes" in voice
        assert "AGENTHUB_TRANSCRIBE_MODEL" in voice
        assert rig.agent.last_run is None
