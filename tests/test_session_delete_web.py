"""Deleting a conversation from the web drawer (headless Chromium, real gateway and hub): the
in-row confirmation (Cancel, Escape, keyboard only), a refusal while the session answers,
and the row leaving every connected client live, the one showing it moving to main; on a
desktop-wide page and a phone-wide one (the drawer)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from playwright.async_api import Locator, Page, ViewportSize, expect

from hub.attachments import Attachment
from hub.origin import Origin
from tests.test_core_conversations import GatedEcho
from tests.test_gateway_support import running_stack
from tests.test_web_attachments import png
from tests.test_web_chat import chromium, send
from tests.test_web_sessions import PHONE, final_reply
from tests.web_pages import paired_page

DESK: ViewportSize = {"width": 1280, "height": 800}


def row(page: Page, key: str) -> Locator:
    return page.locator(f'.session[data-key="{key}"]')


async def open_drawer(page: Page) -> None:
    if await page.locator("#app").get_attribute("data-sidebar") != "open":
        await page.locator("#sidebar-toggle").click()
    await expect(page.locator("#app")).to_have_attribute("data-sidebar", "open")


def open_gates(model: GatedEcho, *words: str) -> None:
    for word in words:
        model.gates[word] = asyncio.Event()
        model.gates[word].set()


async def test_delete_from_the_drawer_on_every_client(data_dir: Path, artifacts: Path) -> None:
    model = GatedEcho()
    open_gates(model, "hello", "plan", "pictures")
    async with (
        running_stack(data_dir, model_factory=lambda: model) as stack,
        chromium() as browser,
    ):
        desk, desk_errors = await paired_page(browser, stack, DESK)
        await send(desk, "hello main")
        await final_reply(desk, "hello main")
        await desk.locator("#new-session").click()
        current = desk.locator('.session[data-current="true"]')
        await expect(current).not_to_have_attribute("data-key", "main")
        key = await current.get_attribute("data-key")
        assert key
        await send(desk, "plan a trip to the sea")
        await final_reply(desk, "plan a trip to the sea")
        photo = Attachment(name="sea.png", media_type="image/png", data=png(96, 64, (40, 110, 200)))
        stack.hub.submit(
            "main", "pictures", Origin(surface="web"), session_key=key, attachments=[photo]
        )
        await stack.hub.default_agent.wait_idle()
        assert len(list((data_dir / "media" / "main").iterdir())) == 1

        # A phone shows the same conversation.
        phone, phone_errors = await paired_page(browser, stack, PHONE)
        await open_drawer(phone)
        await row(phone, key).locator(".session-open").click()
        await expect(row(phone, key)).to_have_attribute("data-current", "true")
        await final_reply(phone, "plan a trip to the sea")

        # Delete asks first, in the row; Cancel and Escape leave everything as it was.
        side = row(desk, key)
        await side.hover()
        await desk.screenshot(path=str(artifacts / "web-session-delete-row.png"))
        await side.locator(".session-delete").click()
        confirm = side.locator(".session-confirm")
        await expect(confirm).to_contain_text("Delete plan a trip to the sea?")
        await expect(side.locator(".session-confirm-cancel")).to_be_focused()
        await desk.screenshot(path=str(artifacts / "web-session-delete-confirm.png"))
        await side.locator(".session-confirm-cancel").click()
        await expect(confirm).to_have_count(0)
        await expect(side.locator(".session-delete")).to_be_focused()
        await desk.keyboard.press("Enter")  # the focused Delete button opens it again
        await expect(confirm).to_be_visible()
        await desk.keyboard.press("Escape")
        await expect(confirm).to_have_count(0)
        assert stack.hub.default_agent.sessions.meta(key) is not None

        # The phone's drawer asks the same way (looked at, then cancelled).
        phone_side = row(phone, key)
        await open_drawer(phone)  # picking a session closed it
        await phone_side.locator(".session-delete").click()
        await expect(phone_side.locator(".session-confirm")).to_be_visible()
        await phone.screenshot(path=str(artifacts / "web-phone-session-delete-confirm.png"))
        await phone.keyboard.press("Escape")
        await expect(phone_side.locator(".session-confirm")).to_have_count(0)

        # While the session answers, deleting is refused with what to do.
        await send(desk, "slow reply coming")
        await expect(side).to_have_attribute("data-busy", "true")
        await side.locator(".session-delete").click()
        await side.locator(".session-confirm-delete").click()
        banner = desk.locator("#banner-text")
        await expect(banner).to_contain_text("stop the reply")
        await expect(banner).to_contain_text("(busy)")
        await expect(side.locator(".session-confirm")).to_have_count(0)
        await expect(side.locator(".session-delete")).to_be_focused()
        model.gates["slow"].set()
        await final_reply(desk, "slow reply coming")

        # Keyboard only: Delete button, Enter, Shift+Tab to "Delete", Enter.
        await side.locator(".session-delete").focus()
        await desk.keyboard.press("Enter")
        await expect(side.locator(".session-confirm-cancel")).to_be_focused()
        await desk.keyboard.press("Shift+Tab")
        await expect(side.locator(".session-confirm-delete")).to_be_focused()
        await desk.keyboard.press("Enter")

        # Gone here and on the phone, live; both move to main.
        await expect(row(desk, key)).to_have_count(0)
        await expect(row(desk, "main")).to_have_attribute("data-current", "true")
        await final_reply(desk, "hello main")
        await expect(row(phone, key)).to_have_count(0)
        await expect(row(phone, "main")).to_have_attribute("data-current", "true")
        await final_reply(phone, "hello main")
        await expect(phone.locator(".message", has_text="plan a trip")).to_have_count(0)
        assert stack.hub.default_agent.sessions.meta(key) is None
        assert list((data_dir / "media" / "main").iterdir()) == []
        # main has no Delete button; a reload lists the session no more.
        await expect(row(desk, "main").locator(".session-delete")).to_have_count(0)
        await desk.reload()
        await expect(row(desk, "main")).to_have_count(1)
        await expect(row(desk, key)).to_have_count(0)
        await desk.screenshot(path=str(artifacts / "web-session-deleted.png"))
        await phone.screenshot(path=str(artifacts / "web-phone-session-deleted.png"))
        assert desk_errors == [] and phone_errors == []
