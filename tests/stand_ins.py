"""The local stand-ins as fixtures: `fakes`, the OpenAI server (tests/fake_openai.py) and the
Bot API server (tests/fake_bot_api.py) for the tests that start `agenthub serve` as a process;
`provider`, the OpenAI server alone. Loaded as a plugin by tests/conftest.py, which both
stand-ins import (so the fixtures cannot live there)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fake_bot_api import FakeBotApi
from tests.fake_openai import FakeOpenAI

BOT_TOKEN = "424242:AAtest-bot-token-c3d4e5f6"


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeOpenAI, FakeBotApi]]:
    bot = FakeBotApi(token=BOT_TOKEN, hang_seconds=0.5)
    await bot.start()
    async with FakeOpenAI() as model:
        yield model, bot
    await bot.stop()


@pytest.fixture
async def provider() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake
