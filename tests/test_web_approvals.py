"""Approval cards in the web client (headless Chromium) against a real gateway, hub link and
hub whose model is the real OpenAI provider talking to the local fake server, which scripts a
`shell` call (policy `ask`): approved from the browser, decided elsewhere (agenthub ctl's
path), shown again from `approvals.list` after a reload, and expired."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.async_api import expect

from hub.approvals import Approvals
from tests.fake_openai import FakeOpenAI
from tests.test_web_chat import send
from tests.test_web_sessions import final_reply
from tests.web_pages import script_shell_call, shell_page

# Markup in the arguments must show as text: the card never renders HTML.
COMMAND = "echo '<b>hi</b>' > made.txt"


async def test_an_ask_tool_is_approved_from_the_browser_and_outcomes_show_everywhere(
    provider: FakeOpenAI, data_dir: Path, artifacts: Path
) -> None:
    async with shell_page(provider, data_dir, Approvals()) as (stack, page, page_errors):
        # 1. The card shows the exact tool and arguments, as text; Approve once runs it.
        script_shell_call(provider, COMMAND, "Made the file.", "call_1")
        await send(page, "make a file")
        card = page.locator(".approval")
        await expect(card).to_have_attribute("data-status", "pending")
        await expect(card.locator(".approval-tool")).to_have_text("shell")
        args = await card.locator(".approval-args").text_content()
        assert json.loads(args or "") == {"command": COMMAND}
        assert await card.locator(".approval-args b").count() == 0
        await expect(page.locator(".tool")).to_have_attribute("data-status", "running")
        await page.screenshot(path=str(artifacts / "web-approval-card.png"))
        await card.get_by_role("button", name="Approve once").click()
        await expect(card).to_have_attribute("data-status", "approved")
        await expect(card.locator(".approval-outcome")).to_have_text("Approved by you, here")
        await expect(card.locator(".approval-actions")).to_be_hidden()
        await expect(page.locator(".tool")).to_have_attribute("data-status", "success")
        await final_reply(page, "Made the file.")
        assert (data_dir / "workspace" / "main" / "made.txt").read_text() == "<b>hi</b>\n"

        # 2. Decided elsewhere (the path `agenthub ctl approvals deny` takes): the card updates.
        script_shell_call(provider, "rm -rf ~", "I did not run it.", "call_2")
        await send(page, "clean up")
        second = page.locator(".approval").nth(1)
        await expect(second).to_have_attribute("data-status", "pending")
        (waiting,) = stack.hub.approvals.pending()
        stack.hub.approvals.decide(waiting.approval_id, "deny", "ctl")
        await expect(second).to_have_attribute("data-status", "denied")
        await expect(second.locator(".approval-outcome")).to_have_text(
            "Denied by agenthub ctl: not run"
        )
        await final_reply(page, "I did not run it.")

        # 3. A reload while one waits: the card comes back from approvals.list, and a
        #    decision made there wins; a second decision is refused with the first's outcome.
        script_shell_call(provider, "ls -la", "Listed.", "call_3")
        await send(page, "list the files")
        await expect(page.locator('.approval[data-status="pending"]')).to_have_count(1)
        await page.reload()
        await expect(page.locator("#conn")).to_have_attribute("data-state", "online")
        again = page.locator('.approval[data-status="pending"]')
        await expect(again).to_have_count(1)
        await expect(again.locator(".approval-args")).to_contain_text('"command": "ls -la"')
        shown_id = await again.get_attribute("data-approval-id")
        await again.get_by_role("button", name="Always for this session").click()
        decided = page.locator(f'.approval[data-approval-id="{shown_id}"]')
        await expect(decided).to_have_attribute("data-status", "approved")
        await expect(decided.locator(".approval-outcome")).to_have_text(
            "Approved for this session by you, here"
        )
        await final_reply(page, "Listed.")
        assert stack.hub.approvals.pending() == []
        assert page_errors == []


async def test_a_card_decided_while_the_page_was_away_and_a_failed_decision(
    provider: FakeOpenAI, data_dir: Path
) -> None:
    async with shell_page(provider, data_dir, Approvals()) as (stack, page, _):
        script_shell_call(provider, "date", "Dated.", "call_1")
        await send(page, "what day is it")
        card = page.locator(".approval")
        await expect(card).to_have_attribute("data-status", "pending")
        # The hub is away: a click cannot decide; the card says so and keeps waiting.
        await stack.link.stop()
        await expect(page.locator("#conn")).to_have_attribute("data-state", "hub_offline")
        await card.get_by_role("button", name="Approve once").click()
        await expect(card.locator(".approval-error")).to_contain_text("Could not decide")
        await expect(card).to_have_attribute("data-status", "pending")
        await expect(card.get_by_role("button", name="Deny")).to_be_enabled()
        # Someone decides in Telegram meanwhile; the outcome event never reaches this page,
        # so after the reconnect the card learns from approvals.list that it stopped waiting.
        (waiting,) = stack.hub.approvals.pending()
        stack.hub.approvals.decide(waiting.approval_id, "approve", "telegram:111")
        await stack.hub.default_agent.wait_idle()
        await stack.link.start()
        await expect(page.locator("#conn")).to_have_attribute("data-state", "online")
        await final_reply(page, "Dated.")
        await expect(card).to_have_attribute("data-status", "closed")
        await expect(card.locator(".approval-outcome")).to_contain_text("decided elsewhere")
        await expect(card.locator(".approval-actions")).to_be_hidden()


async def test_an_unanswered_approval_shows_as_expired(
    provider: FakeOpenAI, data_dir: Path
) -> None:
    async with shell_page(provider, data_dir, Approvals(timeout=1.0)) as (_, page, _):
        script_shell_call(provider, "sleep 1", "Nobody answered.", "call_1")
        await send(page, "wait for me")
        card = page.locator(".approval")
        await expect(card).to_have_attribute("data-status", "expired")
        await expect(card.locator(".approval-outcome")).to_have_text(
            "Expired: nobody decided in time, not run"
        )
        await expect(card.locator(".approval-actions")).to_be_hidden()
        await final_reply(page, "Nobody answered.")
        tool = page.locator(".tool")
        await expect(tool).to_have_attribute("data-status", "error")
