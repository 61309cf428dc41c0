"""The usage line, the schedules panel and the composer's attachments in the real window
(`agenthub desktop` under Xvfb, driven over DevTools as in test_desktop_window.py): the line
counts the shown session's runs (the hub's usage meter), a schedule added through the bridge
shows in the panel with its next run and, after Run now, its last result; an image dropped on
the conversation waits in the composer as a thumbnail and is sent with the message through
the bridge. Screenshots: desktop-usage-schedules.png,
desktop-attachments.png."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest

from tests.test_desktop_window import PAINTED, desktop_window, display, screenshot
from tests.test_web_attachments import png

pytestmark = pytest.mark.slow

__all__ = ["display"]  # the fixture

DROP = """(([name, type, b64]) => {
  const transfer = new DataTransfer();
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  transfer.items.add(new File([bytes], name, { type }));
  const chat = document.getElementById("chat");
  for (const kind of ["dragover", "drop"]) {
    const init = { dataTransfer: transfer, bubbles: true, cancelable: true };
    chat.dispatchEvent(new DragEvent(kind, init));
  }
  return true;
})(%s)"""


async def test_usage_schedules_and_attachments_in_the_window(
    display: str, data_dir: Path, artifacts: Path
) -> None:
    async with desktop_window(display, data_dir) as (_, page):
        await page.wait_for(
            "document.getElementById('usage-line').textContent"
            " === 'No usage yet in this conversation'"
        )
        await page.type_and_send("count these words")
        await page.wait_for(
            "document.querySelector('.message.assistant[data-final=\"true\"]')"
            "?.textContent.includes('count these words')"
        )
        # Echo counts words as tokens and costs nothing.
        line = await page.wait_for(
            "(() => { const text = document.getElementById('usage-line').textContent;"
            " return text.startsWith('1 run') && text; })()"
        )
        assert line == "1 run · 3 tokens in · 3 out · $0"

        # A schedule added through the bridge (as `ctl schedules add` would): the panel lists
        # it; Run now runs it and the panel shows the result.
        added = await page.evaluate(
            "pywebview.api.request('schedules.add', {name: 'standup', cron: '0 9 * * *',"
            " prompt: 'What is on today?', timezone: 'Europe/Berlin'})"
        )
        assert isinstance(added, dict) and added["ok"] is True, added
        await page.wait_for("!document.getElementById('schedules-open').hidden")
        await page.evaluate("document.getElementById('schedules-open').click()")
        row = "document.querySelector('.schedule[data-name=\"standup\"]')"
        next_run = await page.wait_for(f"{row}?.querySelector('.schedule-next').textContent")
        assert next_run != "Next: none"
        await page.evaluate(f"{row}.querySelector('.schedule-run').click()")
        await page.wait_for(f"{row}?.dataset.last === 'completed'", within=30)
        await page.evaluate(PAINTED)
        await asyncio.to_thread(screenshot, display, artifacts / "desktop-usage-schedules.png")
        await page.evaluate("document.getElementById('schedules-close').click()")
        await page.wait_for("document.getElementById('schedules').hidden")

        # An image dropped on the conversation waits in the composer.
        image = base64.b64encode(png(160, 100)).decode()
        assert await page.evaluate(DROP % json.dumps(["photo.png", "image/png", image]))
        await page.wait_for(
            "document.querySelector('#attachment-tray .attachment-image')?.naturalWidth === 160"
        )
        await page.evaluate(
            "(() => { const input = document.getElementById('input');"
            " input.value = 'what is in this picture?'; })()"
        )
        await page.evaluate(PAINTED)
        await asyncio.to_thread(screenshot, display, artifacts / "desktop-attachments.png")
        # Sent through the bridge's `send` with its attachments: the image is in the message.
        await page.evaluate("document.getElementById('send').click()")
        await page.wait_for(
            "[...document.querySelectorAll('.message.assistant[data-final=\"true\"]')]"
            ".some(m => m.textContent.includes('what is in this picture?'))"
        )
        await page.wait_for(
            "document.querySelector('.message.user .attachment-image')?.alt === 'photo.png'"
        )
