"""The conversations sidebar of the web client in headless Chromium against a real gateway,
hub link and hub: at desktop width and at phone width (390px)."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page, ViewportSize, expect

from tests.test_gateway_support import running_stack
from tests.test_web_chat import chromium, pair_with_link, send

PHONE: ViewportSize = {"width": 390, "height": 844}


async def final_reply(page: Page, text: str) -> None:
    reply = page.locator('.message.assistant[data-final="true"] .bubble', has_text=text)
    await expect(reply).to_have_count(1)


async def test_the_sidebar_is_a_drawer_at_phone_width(data_dir: Path, artifacts: Path) -> None:
    async with running_stack(data_dir) as stack, chromium() as browser:
        page = await browser.new_page(viewport=PHONE)
        await pair_with_link(page, stack)
        sidebar = page.locator("#sidebar")
        toggle = page.locator("#sidebar-toggle")
        # Closed at first.
        await expect(sidebar).to_be_hidden()
        await expect(toggle).to_have_attribute("aria-expanded", "false")
        # Opened: a drawer over the chat, narrower than the screen; the scrim closes it. (Before
        # the first message: `main` is titled from it once the list refreshes after the run.)
        await toggle.click()
        await expect(sidebar).to_be_visible()
        await expect(toggle).to_have_attribute("aria-expanded", "true")
        box = await sidebar.bounding_box()
        assert box is not None
        assert box["x"] == 0
        assert box["width"] < PHONE["width"]
        await expect(page.locator(".session")).not_to_have_count(0)
        await expect(page.locator('.session[data-key="main"] .session-name')).to_have_text(
            "Main conversation"
        )
        await page.screenshot(path=str(artifacts / "web-phone-sidebar.png"))
        await page.locator("#scrim").click(position={"x": PHONE["width"] - 20, "y": 400})
        await expect(sidebar).to_be_hidden()
        # Closed, the chat has the whole width, and works.
        await send(page, "hello from a phone")
        await expect(page.locator('.message.assistant[data-final="true"]')).to_have_text(
            "hello from a phone"
        )
        composer = await page.locator("#composer").bounding_box()
        assert composer is not None
        assert composer["x"] >= 0
        assert composer["x"] + composer["width"] <= PHONE["width"]
        # Wide again: the sidebar sits beside the chat and stays as it was toggled.
        await page.set_viewport_size({"width": 1280, "height": 800})
        await toggle.click()
        await expect(sidebar).to_be_visible()
        chat = await page.locator("#chat").bounding_box()
        side = await sidebar.bounding_box()
        assert chat is not None and side is not None
        assert chat["x"] >= side["x"] + side["width"]
        await expect(page.locator('.session[data-key="main"] .session-name')).to_have_text(
            "hello from a phone"
        )
