"""Conversations in the web client (headless Chromium) against a real gateway, hub link and
hub: new chat, switch (each session's live reply kept), rename, search over titles and text,
unread markers for a session that changed elsewhere, the session's message mode, archive, a
reload; and the same at phone width (390px), where the sidebar is a drawer."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Locator, Page, ViewportSize, expect

from hub.approvals import Approvals
from hub.echo import EchoModel
from hub.origin import Origin
from tests.fake_openai import FakeOpenAI
from tests.test_gateway_support import eventually, running_stack
from tests.test_web_chat import chromium, pair_with_link, send
from tests.test_web_sessions import PHONE, final_reply
from tests.web_pages import paired_page, script_shell_call, shell_page

DESK: ViewportSize = {"width": 1280, "height": 800}


def row(page: Page, key: str) -> Locator:
    return page.locator(f'.session[data-key="{key}"]')


async def new_chat(page: Page) -> tuple[str, Locator]:
    """Starts a new chat from the sidebar: its session key and its row, once it is shown."""
    await page.locator("#new-session").click()
    current = page.locator('.session[data-current="true"]')
    await expect(current).not_to_have_attribute("data-key", "main")
    key = await current.get_attribute("data-key")
    assert key
    return key, row(page, key)


async def test_conversations_new_switch_rename_search_unread_mode_and_archive(
    data_dir: Path, artifacts: Path
) -> None:
    async with (
        running_stack(data_dir, model_factory=lambda: EchoModel(pieces=30, delay=0.05)) as stack,
        chromium() as browser,
    ):
        page, page_errors = await paired_page(browser, stack, DESK)
        main = row(page, "main")
        await expect(main).to_have_attribute("data-current", "true")
        await expect(page.locator("#new-session")).to_be_enabled()
        await send(page, "hello main")
        await final_reply(page, "hello main")

        # New chat: a session of its own, shown at once and empty.
        key, side = await new_chat(page)
        await expect(page.locator(".message")).to_have_count(0)
        await expect(page.locator("#session-title")).to_have_text("New chat")
        await send(page, "plan a trip to the sea")
        await final_reply(page, "plan a trip to the sea")
        # Its title comes from the first message; rename it.
        await expect(side.locator(".session-name")).to_have_text("plan a trip to the sea")
        await side.locator(".session-rename").click()
        await page.locator(".session-title-input").fill("Holiday <b>plans</b>")
        await page.locator(".session-title-input").press("Enter")
        await expect(side.locator(".session-name")).to_have_text("Holiday <b>plans</b>")
        await expect(page.locator("#session-title")).to_have_text("Holiday <b>plans</b>")
        assert await page.locator("#sidebar b").count() == 0

        # A reply streaming in `main`, written elsewhere, while this page shows the other
        # session: main is marked unread; the shown session is untouched.
        stack.hub.submit("main", "written on the desktop " * 4, Origin(surface="desktop"))
        await expect(main).to_have_attribute("data-unread", "true")
        await expect(page.locator(".message")).to_have_count(2)
        # Switching keeps each session's live state: main's reply is there, once.
        await main.locator(".session-open").click()
        await expect(main).to_have_attribute("data-current", "true")
        await expect(main).to_have_attribute("data-unread", "false")
        await final_reply(page, ("written on the desktop " * 4).strip())
        await expect(page.locator(".message.assistant")).to_have_count(2)
        # And the other way: a reply streaming in the other session while main is shown.
        await side.locator(".session-open").click()
        await send(page, "one more thing " * 6)
        await expect(page.locator(".message.assistant .bubble.streaming")).to_have_count(1)
        await main.locator(".session-open").click()
        await expect(side).to_have_attribute("data-busy", "true")
        await expect(side).to_have_attribute("data-unread", "true")
        await side.locator(".session-open").click()
        await final_reply(page, ("one more thing " * 6).strip())
        await expect(page.locator(".message.assistant")).to_have_count(2)
        await expect(side).to_have_attribute("data-busy", "false")

        # Search: by title, and by text (a snippet says where it matched).
        search = page.locator("#session-search")
        await search.fill("holiday")
        await expect(page.locator(".session")).to_have_count(1)
        await search.fill("desktop")
        await expect(page.locator(".session")).to_have_count(1)
        await expect(main.locator(".session-snippet")).to_contain_text("desktop")
        await search.fill("nothing like this")
        await expect(page.locator(".session-empty")).to_have_text("No conversation matches.")
        await search.fill("")
        await expect(page.locator(".session")).to_have_count(2)

        # The session's message mode is the hub's default for it, on every surface.
        await side.locator(".session-open").click()
        await page.locator("#mode-picker").select_option("collect")
        agent = stack.hub.default_agent

        def mode_is_collect() -> bool:
            meta = agent.sessions.meta(key)
            return meta is not None and meta.mode == "collect"

        await eventually(mode_is_collect)
        await page.screenshot(path=str(artifacts / "web-sessions.png"))

        # A reload: the list, titles, the shown session and its mode come back.
        await page.reload()
        await expect(page.locator("#conn")).to_have_attribute("data-state", "online")
        await expect(side).to_have_attribute("data-current", "true")
        await expect(side.locator(".session-name")).to_have_text("Holiday <b>plans</b>")
        await expect(page.locator("#mode-picker")).to_have_value("collect")
        await expect(page.locator(".message.user")).to_have_count(2)

        # Archive: gone from the list; main is shown; main itself cannot be archived.
        await side.locator(".session-archive").click()
        await expect(side).to_have_count(0)
        await expect(main).to_have_attribute("data-current", "true")
        await expect(main.locator(".session-archive")).to_have_count(0)
        await final_reply(page, "hello main")
        assert page_errors == []


async def test_a_rename_being_typed_survives_sidebar_refreshes(data_dir: Path) -> None:
    async with (
        running_stack(data_dir, model_factory=lambda: EchoModel(pieces=20, delay=0.05)) as stack,
        chromium() as browser,
    ):
        page, page_errors = await paired_page(browser, stack, DESK)
        _, side = await new_chat(page)
        await send(page, "first words")
        await final_reply(page, "first words")
        await side.locator(".session-rename").click()
        title = page.locator(".session-title-input")
        await expect(title).to_be_focused()
        await title.press_sequentially("Holiday ")
        # Another session starts and ends a reply: the sidebar redraws its markers twice.
        stack.hub.submit("main", "meanwhile " * 5, Origin(surface="desktop"))
        await expect(row(page, "main")).to_have_attribute("data-busy", "true")
        await title.press_sequentially("plans")
        await expect(row(page, "main")).to_have_attribute("data-busy", "false")
        await expect(title).to_be_focused()
        await title.press_sequentially("!")
        await title.press("Enter")
        await expect(side.locator(".session-name")).to_have_text("Holiday plans!")
        assert page_errors == []


async def test_phone_width_new_chat_and_switch_close_the_drawer(
    data_dir: Path, artifacts: Path
) -> None:
    async with running_stack(data_dir) as stack, chromium() as browser:
        page = await browser.new_page(viewport=PHONE)
        await pair_with_link(page, stack)
        # The mode picker shows the mode's name alone at phone width (its long label was cut),
        # the label with what it does where there is room.
        picked = page.locator("#mode-picker option:checked")
        await expect(picked).to_have_text("queue")
        await page.set_viewport_size(DESK)
        await expect(picked).to_have_text("queue: answer it next")
        await page.set_viewport_size(PHONE)
        await expect(picked).to_have_text("queue")
        sidebar = page.locator("#sidebar")
        await send(page, "in main")
        await final_reply(page, "in main")
        await page.locator("#sidebar-toggle").click()
        await page.locator("#new-session").click()
        await expect(sidebar).to_be_hidden()
        await expect(page.locator("#session-title")).to_have_text("New chat")
        await send(page, "from the phone")
        await final_reply(page, "from the phone")
        await page.locator("#sidebar-toggle").click()
        await expect(page.locator(".session")).to_have_count(2)
        await page.screenshot(path=str(artifacts / "web-phone-sessions.png"))
        await (row(page, "main")).locator(".session-open").click()
        await expect(sidebar).to_be_hidden()
        await final_reply(page, "in main")
        await expect(page.locator(".message")).to_have_count(2)


async def test_an_approval_waiting_in_another_session_marks_its_row(
    provider: FakeOpenAI, data_dir: Path, artifacts: Path
) -> None:
    async with shell_page(provider, data_dir, Approvals(), viewport=DESK) as (_, page, _):
        _, side = await new_chat(page)
        script_shell_call(provider, "ls", "Listed.", "call_1")
        await send(page, "list the files")
        await expect(page.locator('.approval[data-status="pending"]')).to_have_count(1)
        main = row(page, "main")
        await main.locator(".session-open").click()
        await expect(side).to_have_attribute("data-waiting", "true")
        await expect(page.locator(".approval")).to_have_count(0)
        # After a reload on main, the marker comes from approvals.list.
        await page.reload()
        await expect(page.locator("#conn")).to_have_attribute("data-state", "online")
        await expect(main).to_have_attribute("data-current", "true")
        await expect(side).to_have_attribute("data-waiting", "true")
        await page.screenshot(path=str(artifacts / "web-sessions-waiting.png"))
        await side.locator(".session-open").click()
        card = page.locator(".approval")
        await expect(card).to_have_attribute("data-status", "pending")
        await card.get_by_role("button", name="Approve once").click()
        await expect(card).to_have_attribute("data-status", "approved")
        await final_reply(page, "Listed.")
        await main.locator(".session-open").click()
        await expect(side).to_have_attribute("data-waiting", "false")
