"""The web client in headless Chromium (Debian's, through Playwright) against a real gateway,
hub link and hub: pairing, streaming, tool rows, the error banner, hostile Markdown, history
after a reload, and a gateway restart mid-reply."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright, expect
from pydantic import SecretStr

from gateway.config import GatewayConfig
from gateway.server import GatewayServer
from hub.echo import EchoModel
from hub.model import Model
from tests.conftest import require_binary
from tests.test_gateway_support import (
    GATEWAY_TOKEN,
    FailingModel,
    ScriptedModel,
    Stack,
    ToolModel,
    running_stack,
)

expect.set_options(timeout=10_000)

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOSTILE = (
    "Careful: <img src=x onerror=\"window.__pwned='img'\"> and "
    "<script>window.__pwned='script'</script> and [click](javascript:window.__pwned='link')"
)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    executable = require_binary("/usr/bin/chromium", "browser tests of the web client")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


def models() -> Iterator[Model]:
    yield EchoModel(pieces=8, delay=0.08)
    yield ToolModel(delay=0.2)
    yield FailingModel()
    yield ScriptedModel(HOSTILE)
    yield EchoModel(pieces=100, delay=0.05)


async def send(page: Page, text: str) -> None:
    await page.fill("#input", text)
    await page.press("#input", "Enter")


async def pair_with_link(page: Page, stack: Stack) -> None:
    code = stack.hub.access.create_invite().code
    await page.goto(f"{stack.url}/#pair={code}")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "online")
    assert "pair=" not in page.url  # the code left the address bar
    assert code not in page.url


async def test_pair_chat_tools_errors_and_hostile_markdown(data_dir: Path, artifacts: Path) -> None:
    made = models()
    async with (
        running_stack(
            data_dir,
            model_factory=lambda: next(made),
            agent_ids=("main", "tools", "failing", "hostile", "slow"),
        ) as stack,
        chromium() as browser,
    ):
        page = await browser.new_page()
        page_errors: list[str] = []
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        await pair_with_link(page, stack)
        picker = page.locator("#agent-picker")
        await expect(picker).to_be_visible()
        await expect(picker.locator("option")).to_have_count(5)

        # Streaming reply, rendered as Markdown.
        await send(page, "Hello **bold** and `code`")
        await expect(page.locator(".message.user .bubble")).to_have_text(
            "Hello **bold** and `code`"
        )
        await expect(page.locator(".message.assistant .bubble.streaming")).to_have_count(1)
        final = page.locator('.message.assistant[data-final="true"] .bubble')
        await expect(final).to_have_text("Hello bold and code")
        await expect(final.locator("strong")).to_have_text("bold")
        await expect(page.locator(".bubble.streaming")).to_have_count(0)
        await expect(page.locator("#stop")).to_be_hidden()

        # A tool row: running, then success with an expandable result.
        await picker.select_option("tools")
        await send(page, "meaning of life")
        tool = page.locator(".tool")
        await expect(tool).to_have_attribute("data-status", "running")
        await expect(tool).to_have_attribute("data-status", "success")
        await expect(tool.locator(".tool-name")).to_have_text("lookup")
        await expect(tool.locator(".tool-result")).to_be_hidden()
        await tool.locator("summary").click()
        await expect(tool.locator(".tool-result")).to_contain_text('"answer": 42')
        await expect(page.locator(".message.assistant").last).to_contain_text("The answer is 42.")
        await page.screenshot(path=str(artifacts / "web-chat-tools.png"))

        # agent_error shows in the banner.
        await picker.select_option("failing")
        await send(page, "hi")
        await expect(page.locator("#banner")).to_be_visible()
        await expect(page.locator("#banner-text")).to_contain_text("OPENAI_API_KEY")

        # Hostile markup is shown as text and runs nothing.
        await page.locator("#banner-close").click()
        await expect(page.locator("#banner")).to_be_hidden()
        await picker.select_option("hostile")
        await send(page, "show me something nasty")
        reply = page.locator('.message.assistant[data-final="true"] .bubble')
        await expect(reply).to_contain_text("<img src=x onerror=")
        await expect(reply).to_contain_text("<script>window.__pwned='script'</script>")
        assert await page.locator(".messages img, .messages script").count() == 0
        hrefs = await reply.locator("a").evaluate_all("links => links.map(a => a.href)")
        assert not any(h.startswith("javascript:") for h in hrefs)
        assert await page.evaluate("window.__pwned") is None
        await page.screenshot(path=str(artifacts / "web-chat.png"))

        # The stop button aborts a reply mid-stream.
        await picker.select_option("slow")
        await send(page, "a long reply to interrupt " * 10)
        await expect(page.locator(".message.assistant .bubble.streaming")).to_have_count(1)
        await page.locator("#stop").click()
        await expect(page.locator(".message.assistant .meta")).to_have_text("Stopped")
        await expect(page.locator("#stop")).to_be_hidden()

        # A reload shows the conversation from history, each message once.
        await page.reload()
        await expect(page.locator("#conn")).to_have_attribute("data-state", "online")
        await expect(page.locator(".message.assistant")).to_have_count(1)
        await expect(page.locator(".message.user")).to_have_count(1)
        await picker.select_option("main")
        await expect(page.locator(".message.assistant .bubble")).to_have_text("Hello bold and code")
        await expect(page.locator(".message")).to_have_count(2)
        assert page_errors == []


async def test_request_access_and_wrong_codes(data_dir: Path) -> None:
    async with running_stack(data_dir) as stack, chromium() as browser:
        page = await browser.new_page()
        await page.goto(stack.url)
        await expect(page.locator("#pairing")).to_be_visible()
        await page.fill("#pair-code", "WRONG123")
        await page.click("#pair-form button")
        await expect(page.locator("#pair-error")).to_contain_text("unknown, used or expired")
        await page.click("#request-access")
        shown = page.locator("#request-code")
        await expect(shown).to_have_text(re.compile(r"^[A-Z0-9]{4}-[A-Z0-9]{4}$"))
        code = (await shown.text_content() or "").replace("-", "")
        stack.hub.access.approve(code)
        await expect(page.locator("#conn")).to_have_attribute("data-state", "online")
        await expect(page.locator("#chat")).to_be_visible()
        await send(page, "approved!")
        await expect(page.locator('.message.assistant[data-final="true"]')).to_have_text(
            "approved!"
        )
        # Revoking the device sends the browser back to the pairing screen.
        device_id = stack.hub.access.devices()[0].device_id
        stack.hub.access.revoke(device_id)
        await expect(page.locator("#pairing")).to_be_visible()
        token = await page.evaluate("localStorage.getItem('agenthub.device')")
        assert token is None


async def test_gateway_restart_mid_reply_shows_the_full_reply_once(data_dir: Path) -> None:
    text = " ".join(f"word{i}" for i in range(30))
    async with (
        running_stack(data_dir, model_factory=lambda: EchoModel(pieces=30, delay=0.05)) as stack,
        chromium() as browser,
    ):
        page = await browser.new_page()
        await pair_with_link(page, stack)
        await send(page, text)
        await expect(page.locator(".message.assistant .bubble.streaming")).to_have_count(1)
        port = stack.gateway.port
        await stack.gateway.stop()
        await expect(page.locator("#conn")).not_to_have_attribute("data-state", "online")
        stack.gateway = GatewayServer(
            GatewayConfig(port=port, gateway_token=SecretStr(GATEWAY_TOKEN)),
            stack.hub.access,
            stack.hub.health,
        )
        await stack.gateway.start()
        await expect(page.locator("#conn")).to_have_attribute("data-state", "online")
        final = page.locator('.message.assistant[data-final="true"] .bubble')
        await expect(final).to_have_text(text)
        await expect(page.locator(".message.assistant")).to_have_count(1)
        await expect(page.locator(".message.user")).to_have_count(1)


async def test_hub_link_restart_mid_reply_shows_the_full_reply_once(data_dir: Path) -> None:
    text = " ".join(f"part{i}" for i in range(30))
    async with (
        running_stack(data_dir, model_factory=lambda: EchoModel(pieces=30, delay=0.05)) as stack,
        chromium() as browser,
    ):
        page = await browser.new_page()
        await pair_with_link(page, stack)
        await send(page, text)
        await expect(page.locator(".message.assistant .bubble.streaming")).to_have_count(1)
        await stack.link.stop()
        await expect(page.locator("#conn")).to_have_attribute("data-state", "hub_offline")
        await stack.hub.default_agent.wait_idle()  # the reply completes while the hub is away
        await stack.link.start()
        await expect(page.locator("#conn")).to_have_attribute("data-state", "online")
        final = page.locator('.message.assistant[data-final="true"] .bubble')
        await expect(final).to_have_text(text)
        await expect(page.locator(".message.assistant")).to_have_count(1)
        await expect(page.locator(".message.user")).to_have_count(1)
