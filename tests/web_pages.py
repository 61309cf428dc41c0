"""Pages of the web client for the browser tests: a page paired with a running stack, its
uncaught errors watched; and a stack whose model is the real OpenAI provider talking to the
local fake server (tests/fake_openai.py) with the `shell` tool under approval (policy `ask`),
for the tests that script a `shell` call and decide it from the page."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, Page, ViewportSize

from hub.approvals import Approvals
from hub.model import Model
from hub.providers import ModelConfig, build_model
from tests.fake_openai import FakeOpenAI, Reply, ToolCall
from tests.test_gateway_support import Stack, running_stack
from tests.test_web_chat import chromium, pair_with_link


async def paired_page(
    browser: Browser, stack: Stack, viewport: ViewportSize | None = None
) -> tuple[Page, list[str]]:
    """A new page paired with the stack, and its uncaught errors (watched from the start,
    pairing included)."""
    page = await browser.new_page(viewport=viewport)
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    await pair_with_link(page, stack)
    return page, page_errors


def shell_model(provider: FakeOpenAI, data_dir: Path, approvals: Approvals) -> Model:
    config = ModelConfig.model_validate(
        {
            "spec": "openai:gpt-test",
            "openai_base_url": provider.base_url,
            "openai_api_key": "sk-test",
            "tooling": {"workspace_root": data_dir / "workspace", "enable_tools": ["shell"]},
        }
    )
    return build_model(config, approvals=approvals)


def script_shell_call(provider: FakeOpenAI, command: str, done: str, call_id: str) -> None:
    provider.enqueue(
        Reply(
            chunks=("I will run it.",),
            tool_calls=(ToolCall("shell", json.dumps({"command": command}), call_id),),
        ),
        Reply(chunks=(done,)),
    )


@asynccontextmanager
async def shell_page(
    provider: FakeOpenAI,
    data_dir: Path,
    approvals: Approvals,
    viewport: ViewportSize | None = None,
) -> AsyncIterator[tuple[Stack, Page, list[str]]]:
    """The stack whose model asks to run `shell`, and a page paired with it (`paired_page`)."""
    async with (
        running_stack(
            data_dir,
            model_factory=lambda: shell_model(provider, data_dir, approvals),
            approvals=approvals,
        ) as stack,
        chromium() as browser,
    ):
        page, page_errors = await paired_page(browser, stack, viewport)
        yield stack, page, page_errors
