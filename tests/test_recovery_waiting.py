"""kill -9 of `agenthub serve` while one turn runs and two wait behind it, through the real
Telegram plugin (local Bot API) and the real openai client (local server): after a restart the
interrupted turn is answered again and both waiting turns are answered, once each, in order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import JsonValue

from hub.scopes import ConversationConfig
from tests.fake_bot_api import FakeBotApi
from tests.fake_openai import FakeOpenAI, Reply
from tests.test_app_lifecycle import serve_env, start, transcript, wait_for
from tests.test_recovery_kill import answered, kill_9, questions, runs

pytestmark = pytest.mark.slow

CHAT = 7010
# Longer than the chat debounce: a message sent this long after the one before is a turn of
# its own, not merged into it.
PAST_DEBOUNCE = ConversationConfig().debounce_idle + 0.3


def accepted(data_dir: Path, text: str) -> Callable[[], bool]:
    def saved() -> bool:
        try:
            entries = transcript(data_dir)
        except (AssertionError, ValueError):
            return False
        return any(e["type"] == "accepted" and e["text"] == text for e in entries)

    return saved


def last_user_text(messages: list[dict[str, JsonValue]]) -> JsonValue:
    return [m["content"] for m in messages if m.get("role") == "user"][-1]


async def test_kill_9_with_turns_waiting_answers_each_once_in_order(
    data_dir: Path, fakes: tuple[FakeOpenAI, FakeBotApi]
) -> None:
    model, bot = fakes
    # The first reply shows a word, then stalls: its run is going when the hub is killed.
    model.enqueue(Reply(chunks=("Thinking", " on."), chunk_delay=60))
    env = serve_env(data_dir, model, bot)
    served, _ = await start(env)
    try:
        await bot.user_says("first question", chat_id=CHAT)
        await wait_for(lambda: model.requests)
        for text in ("second question", "third question"):
            await bot.user_says(text, chat_id=CHAT)
            await wait_for(accepted(data_dir, text))
            await asyncio.sleep(PAST_DEBOUNCE)
        assert len(model.requests) == 1  # both wait behind the first
        await kill_9(served)
    finally:
        served.stop()

    asked = len(model.requests)
    model.enqueue(*(Reply(chunks=(f"answer {n}",)) for n in (1, 2, 3)))
    served, _ = await start(env)
    try:
        await wait_for(lambda: "answer 3" in bot.texts_in(CHAT))
        await wait_for(answered(data_dir, 3))
    finally:
        served.stop()

    after = model.requests[asked:]
    assert [last_user_text(r.messages) for r in after] == [
        "first question",
        "second question",
        "third question",
    ]
    assert questions(data_dir) == ["first question", "second question", "third question"]
    assert [status for _, status in runs(data_dir)] == [
        "interrupted",
        "completed",
        "completed",
        "completed",
    ]
    answers = [t for t in bot.texts_in(CHAT) if t.startswith("answer")]
    assert answers == ["answer 1", "answer 2", "answer 3"]
    assert transcript(data_dir)[-1]["type"] == "run"  # nothing left open
