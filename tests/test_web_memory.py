"""The web client's memory panel in headless Chromium against a real gateway, hub link and hub:
the notes the shown conversation uses (numbered, with whose they are), Forget after an in-row
confirmation (the notes file changes), the panel following the shown agent, the empty panel
saying how to switch memory on, a guest device seeing only its own notes, a failed Forget
showing the hub's message, the phone width layout; and the panel in the real desktop window."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from playwright.async_api import Page, ViewportSize, expect

from hub.origin import Origin
from hub.providers import ModelConfig, build_model
from hub.requests.table import REQUESTS
from hub.tools.memory import MemoryBook, memory_root
from tests.fake_openai import FakeOpenAI, Reply, ToolCall
from tests.test_desktop_window import PAINTED, desktop_window, display, screenshot
from tests.test_gateway_support import Stack, running_stack
from tests.test_session_delete import ask
from tests.test_web_chat import chromium, send
from tests.test_web_sessions import PHONE, final_reply
from tests.test_web_usage_schedules import guest_page
from tests.web_pages import paired_page

__all__ = ["display"]  # the fixture

DESKTOP: ViewportSize = {"width": 1280, "height": 800}
OWNER_NOTES = ("Name is Ana", "Prefers short answers", "Lives in Lisbon")


def book(stack: Stack, whose: str, agent_id: str = "main") -> MemoryBook:
    return MemoryBook(memory_root(stack.hub.data_dir), agent_id, whose)


def seed(stack: Stack, whose: str, *notes: str, agent_id: str = "main") -> MemoryBook:
    notes_book = book(stack, whose, agent_id)
    for note in notes:
        notes_book.remember(note)
    return notes_book


async def open_memory(page: Page) -> None:
    opener = page.locator("#memory-open")
    await expect(opener).to_be_visible()
    await opener.click()
    await expect(page.locator("#memory")).to_be_visible()


async def test_the_owner_reads_and_forgets_notes_after_confirming(
    data_dir: Path, artifacts: Path
) -> None:
    async with (
        running_stack(data_dir, agent_ids=("main", "helper")) as stack,
        chromium() as browser,
    ):
        owner = seed(stack, "owner", *OWNER_NOTES)
        seed(stack, "owner", "Helper's own note", agent_id="helper")
        page, page_errors = await paired_page(browser, stack, DESKTOP)
        await open_memory(page)
        panel = page.locator("#memory")
        await expect(panel.locator("#memory-heading")).to_have_text("What main remembers about you")
        rows = panel.locator(".memory-item")
        await expect(rows.locator(".memory-text")).to_have_text(list(OWNER_NOTES))
        await expect(rows.locator(".memory-number")).to_have_text(["1.", "2.", "3."])
        await expect(panel.locator("#memory-note")).to_be_hidden()

        # Forget asks first, in the row; Escape (or Cancel) keeps the note and the panel.
        second = panel.locator('.memory-item[data-number="2"]')
        await second.locator(".memory-forget").click()
        confirm = second.locator(".memory-confirm")
        await expect(confirm).to_contain_text("Forget Prefers short answers?")
        await expect(confirm.locator(".memory-confirm-cancel")).to_be_focused()
        await page.screenshot(path=str(artifacts / "web-memory-confirm.png"))
        await page.keyboard.press("Escape")
        await expect(confirm).to_have_count(0)
        await expect(panel).to_be_visible()
        await expect(second.locator(".memory-forget")).to_be_focused()
        assert owner.notes() == list(OWNER_NOTES)

        await second.locator(".memory-forget").click()
        await confirm.locator(".memory-confirm-forget").click()
        await expect(panel.locator("#memory-note")).to_have_text("Forgot #2: Prefers short answers")
        await expect(rows.locator(".memory-text")).to_have_text(["Name is Ana", "Lives in Lisbon"])
        await expect(panel.locator("#memory-note")).to_have_attribute("data-error", "false")
        assert owner.notes() == ["Name is Ana", "Lives in Lisbon"]
        await page.screenshot(path=str(artifacts / "web-memory.png"))

        # Showing another agent while open: the panel follows it.
        await page.locator("#agent-picker").select_option("helper")
        await expect(panel.locator("#memory-heading")).to_have_text(
            "What helper remembers about you"
        )
        await expect(rows.locator(".memory-text")).to_have_text(["Helper's own note"])
        await expect(panel.locator("#memory-note")).to_be_hidden()

        # The scrim closes it; reopened, it asks again (a note added meanwhile shows).
        await panel.click(position={"x": 5, "y": 5})
        await expect(panel).to_be_hidden()
        seed(stack, "owner", "Added elsewhere", agent_id="helper")
        await open_memory(page)
        await expect(rows.locator(".memory-text")).to_have_text(
            ["Helper's own note", "Added elsewhere"]
        )
        assert page_errors == []


async def test_no_notes_says_how_to_switch_memory_on_and_fits_a_phone(
    data_dir: Path, artifacts: Path
) -> None:
    async with running_stack(data_dir) as stack, chromium() as browser:
        page, page_errors = await paired_page(browser, stack, PHONE)
        await expect(page.locator("#sidebar")).to_be_hidden()  # a drawer, closed
        await page.locator("#sidebar-toggle").click()
        await open_memory(page)
        panel = page.locator("#memory")
        note = panel.locator("#memory-note")
        await expect(note).to_contain_text('enable_tools = ["memory"] in config.toml')
        await expect(note).to_have_attribute("data-error", "false")
        await expect(panel.locator(".memory-item")).to_have_count(0)
        await panel.locator("#memory-close").click()
        await expect(panel).to_be_hidden()

        seed(stack, "owner", *OWNER_NOTES, "A long note " + "that wraps across the line " * 8)
        await page.locator("#memory-open").click()
        await expect(panel.locator(".memory-item")).to_have_count(4)
        card = await panel.locator(".schedules-card").bounding_box()
        assert card is not None and card["x"] >= 0 and card["x"] + card["width"] <= PHONE["width"]
        for row in await panel.locator(".memory-item").all():
            box = await row.bounding_box()
            assert box is not None and box["x"] + box["width"] <= card["x"] + card["width"]
        await panel.locator('.memory-item[data-number="4"] .memory-forget').click()
        await expect(panel.locator(".memory-confirm-forget")).to_be_visible()
        await page.screenshot(path=str(artifacts / "web-phone-memory.png"))
        assert page_errors == []


async def test_a_guest_sees_only_its_own_notes(data_dir: Path, artifacts: Path) -> None:
    async with running_stack(data_dir) as stack, chromium() as browser:
        seed(stack, "owner", *OWNER_NOTES)
        page = await browser.new_page(viewport=DESKTOP)
        await guest_page(page, stack)
        device = json.loads(await page.evaluate("localStorage.getItem('agenthub.device')"))
        await send(page, "hello as a guest")
        await final_reply(page, "hello as a guest")
        guest = seed(stack, f"web:{device['deviceId']}", "Guest likes jazz")
        await open_memory(page)
        panel = page.locator("#memory")
        await expect(panel.locator("#memory-heading")).to_have_text("What main remembers about you")
        await expect(panel.locator(".memory-text")).to_have_text(["Guest likes jazz"])
        await panel.locator(".memory-forget").click()
        await panel.locator(".memory-confirm-forget").click()
        await expect(panel.locator(".memory-item")).to_have_count(0)
        await expect(panel.locator("#memory-note")).to_have_text("Forgot #1: Guest likes jazz")
        assert guest.notes() == []
        assert book(stack, "owner").notes() == list(OWNER_NOTES)

        # The owner may look at the guest's conversation: the guest's notes, named as whose.
        key = await page.locator('.session[data-current="true"]').get_attribute("data-key")
        assert key is not None
        guest.remember("Guest reads at night")
        owner_page, page_errors = await paired_page(browser, stack, DESKTOP)
        await owner_page.locator(f'.session[data-key="{key}"] .session-open').click()
        await open_memory(owner_page)
        owner_panel = owner_page.locator("#memory")
        await expect(owner_panel.locator("#memory-heading")).to_have_text(
            f"What main remembers about web:{device['deviceId']}"
        )
        await expect(owner_panel.locator(".memory-text")).to_have_text(["Guest reads at night"])
        # That session deleted meanwhile: the page shows `main`, and the panel follows it.
        await ask(stack.hub, "sessions.delete", sessionKey=key)
        await expect(owner_page.locator('.session[data-current="true"]')).to_have_attribute(
            "data-key", "main"
        )
        await expect(owner_panel.locator("#memory-heading")).to_have_text(
            "What main remembers about you"
        )
        await expect(owner_panel.locator(".memory-text")).to_have_text(list(OWNER_NOTES))
        assert page_errors == []


async def test_a_forget_raced_by_another_client_shows_the_hubs_message(data_dir: Path) -> None:
    """The panel still shows notes another client changed: Forget never deletes another note."""
    async with running_stack(data_dir) as stack, chromium() as browser:
        owner = seed(stack, "owner", *OWNER_NOTES)
        page, page_errors = await paired_page(browser, stack, DESKTOP)
        await open_memory(page)
        panel = page.locator("#memory")
        note = panel.locator("#memory-note")

        async def forget(number: int) -> None:
            row = panel.locator(f'.memory-item[data-number="{number}"]')
            await row.locator(".memory-forget").click()
            await row.locator(".memory-confirm-forget").click()

        await expect(panel.locator(".memory-item")).to_have_count(3)
        owner.forget(1)  # another client: #2 is "Lives in Lisbon" now
        await forget(2)
        await expect(note).to_have_text(
            "Could not forget #2: note #2 changed meanwhile (it now says 'Lives in Lisbon'); "
            "look at the notes again and pick the one to forget"
        )
        await expect(note).to_have_attribute("data-error", "true")
        # The list is the hub's again; nothing else went.
        await expect(panel.locator(".memory-text")).to_have_text(list(OWNER_NOTES[1:]))
        assert owner.notes() == list(OWNER_NOTES[1:])

        owner.forget(2)  # and now #2 is gone altogether
        await forget(2)
        await expect(note).to_have_text(
            "Could not forget #2: there is no note #2 (there are notes 1 to 1)"
        )
        await expect(panel.locator(".memory-text")).to_have_text([OWNER_NOTES[1]])
        assert owner.notes() == [OWNER_NOTES[1]]
        assert page_errors == []


async def test_a_refused_or_unreadable_list_shows_why_and_an_older_hub_hides_the_button(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        running_stack(data_dir, agent_ids=("main", "helper")) as stack,
        chromium() as browser,
    ):
        page, page_errors = await paired_page(browser, stack, DESKTOP)
        panel = page.locator("#memory")
        note = panel.locator("#memory-note")
        # Notes that cannot be read: the hub's words, as an error, and no rows.
        book(stack, "owner").path.mkdir(parents=True)
        await open_memory(page)
        await expect(note).to_have_text(
            "Could not list the notes: the notes could not be read (Is a directory)"
        )
        await expect(note).to_have_attribute("data-error", "true")
        await expect(panel.locator(".memory-item")).to_have_count(0)
        await panel.locator("#memory-close").click()
        book(stack, "owner").path.rmdir()

        # This device made a guest: `main` is not its to see; the button stays, the panel says so.
        saved = await page.evaluate("localStorage.getItem('agenthub.device')")
        device = json.loads(saved)["deviceId"]
        config = stack.hub.conversation_config
        stack.hub.conversation_config = config.model_copy(
            update={"guest_devices": frozenset({device})}
        )
        await open_memory(page)
        await expect(note).to_have_text(
            "Could not list the notes: session 'main' is not yours to see"
        )
        await expect(note).to_have_attribute("data-error", "true")
        stack.hub.conversation_config = config
        await panel.locator("#memory-close").click()

        # A hub without memory requests: asked again (another agent shown), the panel closes
        # and the button goes.
        await open_memory(page)
        await expect(note).to_contain_text('enable_tools = ["memory"]')
        monkeypatch.delitem(REQUESTS, "memory.list")
        await page.locator("#agent-picker").select_option("helper")
        await expect(panel).to_be_hidden()
        await expect(page.locator("#memory-open")).to_be_hidden()
        assert page_errors == []


NOTE_TEXTS = "[...document.querySelectorAll('#memory .memory-text')].map((n) => n.textContent)"


@pytest.mark.slow
async def test_the_panel_in_the_desktop_window(
    display: str, data_dir: Path, artifacts: Path
) -> None:
    owner = MemoryBook(memory_root(data_dir), "main", "owner")
    for note in OWNER_NOTES:
        owner.remember(note)
    async with desktop_window(display, data_dir) as (_, page):
        await page.wait_for("!document.getElementById('memory-open').hidden")
        await page.evaluate("document.getElementById('memory-open').click()")
        shown = await page.wait_for(
            f"(() => {{ const t = {NOTE_TEXTS}; return t.length && t; }})()"
        )
        assert shown == list(OWNER_NOTES)
        heading = await page.evaluate("document.getElementById('memory-heading').textContent")
        assert heading == "What main remembers about you"
        await page.evaluate(
            "document.querySelector('#memory [data-number=\"1\"] .memory-forget').click()"
        )
        await page.wait_for("!!document.querySelector('#memory .memory-confirm-forget')")
        await page.evaluate("document.querySelector('#memory .memory-confirm-forget').click()")
        said = await page.wait_for("document.getElementById('memory-note').textContent")
        assert said == "Forgot #1: Name is Ana"
        assert await page.evaluate(NOTE_TEXTS) == list(OWNER_NOTES[1:])
        await page.evaluate(PAINTED)
        await asyncio.to_thread(screenshot, display, artifacts / "desktop-memory.png")
        assert owner.notes() == list(OWNER_NOTES[1:])


async def test_a_note_the_agent_saves_shows_in_the_open_panel(data_dir: Path) -> None:
    async with FakeOpenAI() as provider:
        config = ModelConfig.model_validate(
            {
                "spec": "openai:gpt-test",
                "openai_base_url": provider.base_url,
                "openai_api_key": "sk-test",
                "tooling": {"memory_root": memory_root(data_dir), "enable_tools": ["memory"]},
            }
        )
        remember = ToolCall("remember", json.dumps({"note": "Drinks green tea"}))
        provider.enqueue(Reply(chunks=(), tool_calls=(remember,)), Reply(chunks=("Noted.",)))
        async with (
            running_stack(data_dir, model_factory=lambda: build_model(config)) as stack,
            chromium() as browser,
        ):
            page, page_errors = await paired_page(browser, stack, DESKTOP)
            await open_memory(page)
            panel = page.locator("#memory")
            await expect(panel.locator(".memory-item")).to_have_count(0)
            # The owner tells the agent on another surface, while this panel is open.
            stack.hub.submit("main", "I drink green tea", Origin(surface="desktop"))
            await expect(panel.locator(".memory-text")).to_have_text(["Drinks green tea"])
            assert page_errors == []
