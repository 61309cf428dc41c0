"""kill -9 of `agenthub serve` while a run waits for an approval asked in Telegram (real
python-telegram-bot against the local Bot API, real openai client against the local server):
at the next start the approval is resolved as denied by `restart` in its session (the tool
call's refusal is its result, so every client's history shows it), nothing was run, and the
question is answered again (the call that waited changed nothing)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.fake_bot_api import FakeBotApi
from tests.fake_openai import FakeOpenAI, Reply, ToolCall
from tests.test_app_lifecycle import serve_env, start, transcript, wait_for
from tests.test_recovery_kill import answered, kill_9, runs, served_ctl

pytestmark = pytest.mark.slow

CHAT = 7020
MARKER = "approval-crash-marker"


async def test_kill_9_while_an_approval_waits_denies_it_by_restart(
    data_dir: Path, fakes: tuple[FakeOpenAI, FakeBotApi]
) -> None:
    model, bot = fakes
    command = json.dumps({"command": f"touch {MARKER}"})
    model.enqueue(Reply(chunks=(), tool_calls=(ToolCall("shell", command),)))
    env = serve_env(data_dir, model, bot, AGENTHUB_ENABLE_TOOLS="shell")
    served, _ = await start(env)
    try:
        await bot.user_says("make the marker", chat_id=CHAT)
        await wait_for(lambda: any(chat == CHAT for chat, _ in bot.keyboards))
        await kill_9(served)
    finally:
        served.stop()

    asked = len(model.requests)
    model.enqueue(Reply(chunks=("I will not touch anything.",)))
    served, _ = await start(env)
    try:
        await wait_for(lambda: "I will not touch anything." in bot.texts_in(CHAT))
        await wait_for(lambda: any("waited for your approval" in t for t in bot.texts_in(CHAT)))
        await wait_for(answered(data_dir, 1))
        pending = await asyncio.to_thread(served_ctl, env, "approvals", "list", "--json")
    finally:
        served.stop()

    tools = [e for e in transcript(data_dir) if e["type"] == "tool"]
    assert [(t["toolName"], t["isError"], t["result"]) for t in tools] == [
        ("shell", True, "ToolDeniedError: shell was not run: denied by restart")
    ]
    assert [status for _, status in runs(data_dir)] == ["interrupted", "completed"]
    assert json.loads(pending)["result"]["approvals"] == []
    assert not await asyncio.to_thread(lambda: list(data_dir.rglob(MARKER)))  # never ran
    # Answered again: the model saw the question once more, with nothing run.
    again = [m for m in model.requests[asked].messages if m.get("role") == "user"]
    assert [m["content"] for m in again] == ["make the marker"]
