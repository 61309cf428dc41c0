"""Updates the library cannot read, or that carry odd entities, are skipped or handled without
stopping the updates behind them; health counts them. Real python-telegram-bot against the
local Bot API server."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from aiohttp import ClientSession, web
from pydantic import JsonValue

from tests.conftest import free_port
from tests.telegram_rig import ScriptedModel, telegram_health, telegram_rig, until

CHAT = 1001


def message(text: str, *, chat_id: int = CHAT, message_id: int = 50) -> dict[str, JsonValue]:
    return {
        "message_id": message_id,
        "date": int(time.time()),
        "chat": {"id": chat_id, "type": "private", "first_name": "Alice"},
        "from": {"id": chat_id, "is_bot": False, "first_name": "Alice"},
        "text": text,
    }


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info is not None or r.levelno >= logging.ERROR]


async def test_an_update_without_date_is_skipped_once_and_later_ones_are_answered(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with telegram_rig(data_dir, ScriptedModel()) as rig:
        broken = message("no date here")
        del broken["date"]
        bad_id = await rig.api.push_update({"message": broken})
        await rig.ask("hello after the broken one")
        assert rig.api.texts_in(CHAT) == ["hello after the broken one"]
        assert rig.plugin.receiver.skipped == 1
        skipped_lines = [r for r in caplog.records if f"update {bad_id} skipped" in r.message]
        assert len(skipped_lines) == 1
        assert skipped_lines[0].levelno == logging.WARNING
        assert tracebacks(caplog) == []
        health = telegram_health(rig.hub)
        assert health.status == "ok"
        assert "skipped updates: 1" in health.detail
        assert "last update" in health.detail


async def test_a_batch_with_a_broken_update_in_the_middle_loses_none_of_the_others(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with telegram_rig(data_dir, ScriptedModel()) as rig:
        broken = message("broken", chat_id=2002)
        broken["chat"] = "not a chat"
        await rig.api.user_says("first", chat_id=2001)
        await rig.api.push_update({"message": broken})
        await rig.api.user_says("third", chat_id=2003)
        await until(lambda: bool(rig.api.replies_in(2003)), "the reply after the broken one")
        await until(lambda: bool(rig.api.replies_in(2001)), "the reply before it")
        await rig.settle()
        assert rig.api.texts_in(2001) == ["first"]
        assert rig.api.texts_in(2003) == ["third"]
        assert rig.plugin.receiver.skipped == 1
        assert tracebacks(caplog) == []


@pytest.mark.parametrize(
    ("text", "entities"),
    [
        # A mention whose offsets split the emoji in front of it.
        ("😀@agenthub_test_bot hi", [{"type": "mention", "offset": 1, "length": 19}]),
        # A command entity of length 1 cutting an emoji in half.
        ("😀 hello", [{"type": "bot_command", "offset": 0, "length": 1}]),
        # Offsets beyond the text, negative offsets and lengths.
        ("plain words", [{"type": "mention", "offset": 40, "length": 5}]),
        ("plain words", [{"type": "bot_command", "offset": 0, "length": -3}]),
    ],
)
async def test_entities_with_odd_offsets_never_drop_the_message(
    data_dir: Path,
    caplog: pytest.LogCaptureFixture,
    text: str,
    entities: list[JsonValue],
) -> None:
    async with telegram_rig(data_dir, ScriptedModel()) as rig:
        odd = message(text) | {"entities": entities}
        await rig.api.push_update({"message": odd})
        await until(lambda: bool(rig.api.replies_in(CHAT)), "a reply to the odd message")
        await rig.settle()
        assert rig.plugin.receiver.skipped == 0
        assert len(rig.api.replies_in(CHAT)) == 1
        assert tracebacks(caplog) == []


async def test_webhook_acknowledges_an_unreadable_update_and_counts_it(data_dir: Path) -> None:
    port = free_port()
    secret = "s3cret-token-0123456789"
    async with telegram_rig(
        data_dir,
        ScriptedModel(),
        webhook_url=f"http://127.0.0.1:{port}/tg/hook",
        webhook_secret=secret,
    ) as rig:
        app = web.Application()
        rig.plugin.attach_webhook(app)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            await until(lambda: bool(rig.api.webhook_url), "setWebhook")
            broken = message("no date")
            del broken["date"]
            await rig.api.push_update({"message": broken})
            assert rig.api.webhook_statuses == [200]
            async with ClientSession() as client:
                headers = {"X-Telegram-Bot-Api-Secret-Token": secret}
                async with client.post(
                    f"http://127.0.0.1:{port}/tg/hook", json=[1, 2], headers=headers
                ) as response:
                    assert response.status == 400
            await rig.api.user_says("still here")
            await until(lambda: bool(rig.api.replies_in(CHAT)), "the next message answered")
            assert rig.plugin.receiver.skipped == 1
            assert "skipped updates: 1" in telegram_health(rig.hub).detail
        finally:
            await runner.cleanup()
