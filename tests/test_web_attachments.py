"""Attachments in the web client (headless Chromium) against a real gateway, hub link and hub:
the 📎 button, a drop on the conversation and a paste into the field put files in the composer
(image thumbnails, file chips, removable); what would not fit in one frame of the gateway
(`maxFrameBytes` from `registered`) or is one too many is refused there, named, before sending;
a photo too big is sent shrunk."""

from __future__ import annotations

import base64
import random
import struct
import zlib
from pathlib import Path

from playwright.async_api import FilePayload, Page, expect

from hub.sessions import MessageEntry
from tests.test_gateway_support import running_stack
from tests.test_web_chat import chromium, pair_with_link
from tests.test_web_sessions import PHONE


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def _png(width: int, height: int, rows: bytes, level: int = 6) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows, level))
        + _chunk(b"IEND", b"")
    )


def png(width: int, height: int, rgb: tuple[int, int, int] = (220, 60, 40)) -> bytes:
    """A real PNG of one colour (no image library needed)."""
    return _png(width, height, (b"\x00" + bytes(rgb) * width) * height)


def noise_png(width: int, height: int) -> bytes:
    """A PNG that does not compress (so it is big), for the shrinking test."""
    rng = random.Random(7)
    rows = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))
    return _png(width, height, rows, level=1)


async def put_files(page: Page, how: str, files: list[tuple[str, str, bytes]]) -> None:
    """Drop `files` ([(name, type, bytes)]) on the conversation or paste them into the field,
    as the browser does (a DataTransfer holding File objects)."""
    encoded = [[name, kind, base64.b64encode(data).decode()] for name, kind, data in files]
    await page.evaluate(
        """([how, files]) => {
          const transfer = new DataTransfer();
          for (const [name, type, b64] of files) {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            transfer.items.add(new File([bytes], name, { type }));
          }
          if (how === "paste") {
            const input = document.getElementById("input");
            input.dispatchEvent(new ClipboardEvent("paste", {
              clipboardData: transfer, bubbles: true, cancelable: true }));
          } else {
            const chat = document.getElementById("chat");
            chat.dispatchEvent(new DragEvent("dragover", {
              dataTransfer: transfer, bubbles: true, cancelable: true }));
            chat.dispatchEvent(new DragEvent("drop", {
              dataTransfer: transfer, bubbles: true, cancelable: true }));
          }
        }""",
        [how, encoded],
    )


async def test_button_drop_and_paste_fill_the_composer_and_limits_are_said(
    data_dir: Path, artifacts: Path
) -> None:
    limit = 64 * 1024
    async with (
        running_stack(data_dir, max_frame_bytes=limit) as stack,
        chromium() as browser,
    ):
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await pair_with_link(page, stack)
        tray = page.locator("#attachment-tray")
        await expect(tray).to_be_hidden()

        # The button (a file chooser): an image becomes a thumbnail, a text file a chip.
        async with page.expect_file_chooser() as chooser:
            await page.locator("#attach").click()
        files: list[FilePayload] = [
            {"name": "red.png", "mimeType": "image/png", "buffer": png(120, 80)},
            {"name": "notes.md", "mimeType": "text/markdown", "buffer": b"# Notes\n" * 40},
        ]
        await (await chooser.value).set_files(files)
        await expect(tray.locator(".attachment-image")).to_have_count(1)
        await expect(tray.locator(".attachment-image")).to_have_attribute("alt", "red.png")
        await expect(tray.locator(".attachment-file .attachment-name")).to_have_text("notes.md")
        await expect(tray.locator(".attachment-file .attachment-size")).to_have_text("320 B")

        # A drop on the conversation and a paste into the field add more.
        await put_files(page, "drop", [("blue.png", "image/png", png(60, 60, (30, 60, 220)))])
        await put_files(page, "paste", [("data.csv", "text/csv", b"a,b\n1,2\n")])
        await expect(tray.locator(".attachment-image")).to_have_count(2)
        await expect(tray.locator(".attachment-file")).to_have_count(2)
        await page.fill("#input", "what do you make of these?")
        await page.screenshot(path=str(artifacts / "web-attachments-composer.png"))

        # × removes one.
        await tray.locator('.attachment-file:has-text("data.csv") .attachment-remove').click()
        await expect(tray.locator(".attachment-file")).to_have_count(1)

        # Too big for one frame of this gateway: refused with the reason, nothing added.
        error = page.locator("#composer-error")
        await put_files(page, "drop", [("big.bin", "application/pdf", bytes(100 * 1024))])
        await expect(error).to_be_visible()
        await expect(error).to_contain_text("Not attached: big.bin (100 KB)")
        await expect(error).to_contain_text("a message can carry about 47 KB in all")
        await expect(tray.locator(".attachment-file")).to_have_count(1)

        # More than 8 at once: the ninth and later are refused, named.
        await put_files(page, "drop", [(f"f{i}.txt", "text/plain", b"x") for i in range(7)])
        await expect(error).to_contain_text("f5.txt: a message takes at most 8 attachments")
        await expect(error).to_contain_text("f6.txt")
        await expect(tray.locator(".attachment-image, .attachment-file")).to_have_count(8)

        # A text grown past the limit with the files: refused before sending, nothing lost.
        await page.fill("#input", "x" * limit)
        await page.press("#input", "Enter")
        await expect(error).to_contain_text("Not sent: a message can carry about 47 KB")
        await expect(page.locator(".message")).to_have_count(0)
        await expect(tray.locator(".attachment-image, .attachment-file")).to_have_count(8)
        assert errors == []


async def test_a_big_photo_is_shrunk_before_it_is_attached(data_dir: Path) -> None:
    limit = 2 * 1024 * 1024
    async with running_stack(data_dir, max_frame_bytes=limit) as stack, chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        await pair_with_link(page, stack)
        photo = noise_png(3000, 1000)  # ~9 MB of noise: far over the frame as it is
        assert len(photo) > 4 * limit
        await put_files(page, "drop", [("scan.png", "image/png", photo)])
        image = page.locator("#attachment-tray .attachment-image")
        await expect(image).to_have_attribute("alt", "scan.jpg")
        size = await image.evaluate(
            "(img) => img.decode().then(() => [img.naturalWidth, img.naturalHeight])"
        )
        # Noise barely compresses: the first size that fits the frame is taken.
        assert size in ([2048, 683], [1600, 533], [1280, 427], [1024, 341], [800, 267])
        await expect(page.locator("#composer-error")).to_be_hidden()


async def test_sent_images_show_in_the_conversation_and_in_history(
    data_dir: Path, artifacts: Path
) -> None:
    async with running_stack(data_dir) as stack, chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await pair_with_link(page, stack)
        await put_files(
            page,
            "drop",
            [
                ("red.png", "image/png", png(120, 80)),
                ("notes.txt", "text/plain", b"the notes say hello"),
            ],
        )
        tray = page.locator("#attachment-tray")
        await expect(tray.locator(".attachment-image, .attachment-file")).to_have_count(2)
        await page.fill("#input", "what is in the picture?")
        await page.press("#input", "Enter")
        mine = page.locator(".message.user").last
        # At once, from the bytes at hand; the tray is empty again.
        await expect(mine.locator(".attachment-image")).to_have_attribute("alt", "red.png")
        await expect(tray).to_be_hidden()
        reply = page.locator('.message.assistant[data-final="true"]')
        await expect(reply).to_have_count(1)
        await expect(reply).to_contain_text("what is in the picture?")
        # History's entry names the image (the text file became text of the turn).
        entries = stack.hub.default_agent.history()
        user = next(e for e in entries if isinstance(e, MessageEntry) and e.role == "user")
        assert isinstance(user, MessageEntry)
        assert [a.name for a in user.attachments] == ["red.png"]
        await expect(mine.locator(".attachment-image")).to_have_count(1)
        # The text file's text is in the turn; it shows as a chip that opens to it.
        await expect(mine.locator(".bubble")).to_have_text("what is in the picture?")
        note = mine.locator(".attachment-text")
        await expect(note.locator(".attachment-name")).to_have_text("notes.txt")
        await note.locator("summary").click()
        await expect(note.locator(".attachment-body")).to_have_text("the notes say hello")
        await page.screenshot(path=str(artifacts / "web-attachment-image.png"))
        # At phone width the conversation, its thumbnail and the composer fit the screen.
        await page.set_viewport_size(PHONE)
        for part in ("#composer", ".message.user .attachment-image", "#usage-line"):
            box = await page.locator(part).last.bounding_box()
            assert box is not None and box["x"] >= 0
            assert box["x"] + box["width"] <= PHONE["width"], part
        await page.screenshot(path=str(artifacts / "web-phone-chat.png"))
        await page.set_viewport_size({"width": 1280, "height": 800})

        # After a reload the thumbnail comes from the hub (attachments.get).
        await page.reload()
        await expect(page.locator("#conn")).to_have_attribute("data-state", "online")
        shown = page.locator(".message.user .attachment-image")
        await expect(shown).to_have_count(1)
        size = await shown.evaluate(
            "(img) => img.decode().then(() => [img.naturalWidth, img.naturalHeight])"
        )
        assert size == [120, 80]
        # Clicking enlarges it; clicking again shrinks it.
        await shown.click()
        await expect(shown).to_have_class("attachment-image expanded")
        await shown.click()
        await expect(shown).to_have_class("attachment-image")

        # A kind the hub does not take is refused by it, in its words, on the message.
        await put_files(page, "drop", [("photo.heic", "image/heic", b"\x00\x01\x02")])
        await expect(tray.locator(".attachment-file")).to_have_count(1)  # read, waiting
        await page.press("#input", "Enter")
        failed = page.locator('.message.user[data-status="failed"] .meta')
        await expect(failed).to_contain_text("Not sent:")
        await expect(failed).to_contain_text("image/heic")
        assert errors == []
