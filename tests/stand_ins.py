"""The local stand-ins a served hub talks to, as one fixture: the Bot API server
(tests/fake_bot_api.py) and the OpenAI server (tests/fake_openai.py), for the tests that start
`agenthub serve` as a process. Loaded as a plugin by tests/conftest.py, which both stand-ins
import (so the fixture cannot live there)."""

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
