"""The web client's usage line and schedules panel in headless Chromium against a real gateway,
hub link and hub with the usage meter and the scheduler running: the shown session's tokens and
cost (updated when its runs end, per session), the schedules with their next run and last result
(Run now); a guest device sees the usage of its own chat and no schedules."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Page, expect

from hub.echo import EchoModel
from hub.schedules import ScheduleSpec
from hub.schedules_service import Scheduler
from hub.usage import Price, PriceTable
from hub.usage_meter import UsageMeter
from tests.test_gateway_support import Stack, running_stack
from tests.test_web_chat import chromium, pair_with_link, send
from tests.test_web_sessions import PHONE, final_reply

ECHO_PRICE = Price(input=1000, output=3000)  # USD per million tokens: costs that show


@asynccontextmanager
async def metered_stack(data_dir: Path, *specs: ScheduleSpec) -> AsyncIterator[Stack]:
    """A running stack whose runs are recorded in usage.jsonl (echo priced) and which runs
    `specs` as schedules."""
    async with running_stack(
        data_dir, model_factory=lambda: EchoModel(pieces=4, delay=0.02)
    ) as stack:
        meter = UsageMeter(stack.hub, data_dir / "usage.jsonl", PriceTable({"echo": ECHO_PRICE}))
        scheduler = Scheduler(stack.hub, data_dir / "schedules.jsonl", list(specs), meter=meter)
        await meter.start()
        await scheduler.start()
        try:
            yield stack
        finally:
            await scheduler.stop()
            await meter.stop()


async def test_usage_line_counts_the_shown_sessions_runs(data_dir: Path, artifacts: Path) -> None:
    async with metered_stack(data_dir) as stack, chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await pair_with_link(page, stack)
        line = page.locator("#usage-line")
        await expect(line).to_have_text("No usage yet in this conversation")
        await send(page, "one two three")
        await final_reply(page, "one two three")
        # Echo counts words as tokens: 3 in, 3 out, at 1000 and 3000 USD per million.
        await expect(line).to_have_text("1 run · 3 tokens in · 3 out · $0.012")
        await send(page, "four five")
        await final_reply(page, "four five")
        await expect(line).to_have_text("2 runs · 5 tokens in · 5 out · $0.020")
        await page.screenshot(path=str(artifacts / "web-usage-line.png"))
        # Another session has its own totals; back in main, main's.
        await page.locator("#new-session").click()
        await expect(page.locator(".message")).to_have_count(0)
        await expect(line).to_have_text("No usage yet in this conversation")
        await send(page, "six")
        await final_reply(page, "six")
        await expect(line).to_have_text("1 run · 1 tokens in · 1 out · $0.0040")
        await page.locator('.session[data-key="main"] .session-open').click()
        await expect(line).to_have_text("2 runs · 5 tokens in · 5 out · $0.020")
        assert errors == []


async def test_schedules_panel_lists_next_run_and_last_result(
    data_dir: Path, artifacts: Path
) -> None:
    standup = ScheduleSpec(
        name="standup", cron="0 9 * * mon-fri", prompt="What is on today?", timezone="Europe/Berlin"
    )
    once = ScheduleSpec(name="reminder", at="2099-12-24T18:00", prompt="Call home", deliver="none")
    async with metered_stack(data_dir, standup, once) as stack, chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        await pair_with_link(page, stack)
        opener = page.locator("#schedules-open")
        await expect(opener).to_have_text("Schedules (2)")
        await opener.click()
        panel = page.locator("#schedules")
        await expect(panel).to_be_visible()
        row = panel.locator('.schedule[data-name="standup"]')
        await expect(row.locator(".schedule-timing")).to_contain_text(
            "cron 0 9 * * mon-fri (Europe/Berlin)"
        )
        await expect(row.locator(".schedule-prompt")).to_have_text("What is on today?")
        await expect(row.locator(".schedule-next")).not_to_have_text("Next: none")
        await expect(row.locator(".schedule-last")).to_have_text("Last: Never run yet")
        reminder = panel.locator('.schedule[data-name="reminder"]')
        await expect(reminder.locator(".schedule-timing")).to_contain_text(
            "once at 2099-12-24T18:00"
        )
        # Run now: it runs in its session; the panel shows the result when the run ends.
        await row.locator(".schedule-run").click()
        await expect(row).to_have_attribute("data-last", "completed")
        await expect(row.locator(".schedule-last")).to_contain_text("done")
        await expect(row.locator(".schedule-last")).to_contain_text("What is on today?")
        await page.screenshot(path=str(artifacts / "web-schedules.png"))
        # Escape closes it; the conversation shows the schedule's turn (it ran in main).
        await page.keyboard.press("Escape")
        await expect(panel).to_be_hidden()
        await final_reply(page, "What is on today?")
        # At phone width the panel fits the screen.
        await page.set_viewport_size(PHONE)
        await expect(page.locator("#sidebar")).to_be_hidden()  # a drawer now, closed
        await page.locator("#sidebar-toggle").click()
        await opener.click()
        box = await panel.locator(".schedules-card").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        await page.screenshot(path=str(artifacts / "web-phone-schedules.png"))
        await panel.locator("#schedules-close").click()
        await expect(panel).to_be_hidden()


async def guest_page(page: Page, stack: Stack) -> None:
    """Pair `page`, then make its device a guest (not the owner's) and reload."""
    await pair_with_link(page, stack)
    saved = await page.evaluate("localStorage.getItem('agenthub.device')")
    device = json.loads(saved)["deviceId"]
    config = stack.hub.conversation_config
    stack.hub.conversation_config = config.model_copy(update={"guest_devices": frozenset({device})})
    await page.reload()
    await expect(page.locator("#conn")).to_have_attribute("data-state", "online")


async def test_a_guest_gets_its_own_chat_and_its_usage_but_no_schedules(
    data_dir: Path,
) -> None:
    standup = ScheduleSpec(name="standup", cron="0 9 * * *", prompt="hi")
    async with metered_stack(data_dir, standup) as stack, chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        await guest_page(page, stack)
        # A guest may not write in the owner's `main`: it gets a conversation of its own.
        await expect(page.locator('.session[data-current="true"]')).not_to_have_attribute(
            "data-key", "main"
        )
        await send(page, "hello as a guest")
        await final_reply(page, "hello as a guest")
        # Usage of its own session it may see; schedules are the owner's.
        await expect(page.locator("#usage-line")).to_have_text(
            "1 run · 4 tokens in · 4 out · $0.016"
        )
        await expect(page.locator("#schedules-open")).to_be_hidden()
        await expect(page.locator('.session[data-key="main"]')).to_have_count(0)
