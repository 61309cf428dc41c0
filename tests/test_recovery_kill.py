"""kill -9 of `agenthub serve` in the middle of a Telegram reply, through the real surfaces:
the process (tests/cli_process.py), the real Telegram plugin against the local Bot API, the
real openai client against the local OpenAI server. After a restart the interrupted run is
closed in its session and the question answered again, or (after a tool with side effects)
the chat is told that nothing was re-run."""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli_process import Served, run_cli
from tests.fake_bot_api import FakeBotApi
from tests.fake_openai import FakeOpenAI, Reply, ToolCall
from tests.test_app_lifecycle import serve_env, start, transcript, wait_for

pytestmark = pytest.mark.slow

SLOW = Reply(chunks=tuple(f"part{i} " for i in range(40)), chunk_delay=0.1)


def stamp(note: str) -> str:
    """A user tool standing for one with side effects (not read-only)."""
    return f"stamped {note}"


async def kill_9(served: Served) -> None:
    served.process.kill()  # SIGKILL: no drain, no shutdown code runs
    await asyncio.to_thread(served.wait_exit, 20)


def runs(data_dir: Path) -> list[tuple[str, str]]:
    return [(str(e["runId"]), str(e["status"])) for e in transcript(data_dir) if e["type"] == "run"]


def questions(data_dir: Path) -> list[str]:
    return [str(e["text"]) for e in transcript(data_dir) if e.get("role") == "user"]


async def test_kill_9_mid_reply_answers_the_question_again(
    data_dir: Path, fakes: tuple[FakeOpenAI, FakeBotApi]
) -> None:
    model, bot = fakes
    model.default = SLOW
    env = serve_env(data_dir, model, bot)
    served, _ = await start(env)
    try:
        await bot.user_says("what is the plan?", chat_id=7001)
        await wait_for(lambda: model.requests)
        await asyncio.sleep(0.5)  # the reply is streaming
        await kill_9(served)
    finally:
        served.stop()
    asked = len(model.requests)
    model.default = Reply(chunks=("Here is the plan.",))
    served, _ = await start(env)
    try:
        await wait_for(lambda: "Here is the plan." in bot.texts_in(7001))
        # The chat can show the text before the run's end is saved: wait for that too.
        await wait_for(answered(data_dir, 1))
    finally:
        served.stop()
    statuses = [status for _, status in runs(data_dir)]
    assert statuses == ["interrupted", "completed"]
    assert questions(data_dir) == ["what is the plan?"]  # asked once, answered again
    again = model.requests[asked]
    sent = [m for m in again.messages if m.get("role") == "user"]
    assert [m["content"] for m in sent] == ["what is the plan?"]
    # The answer replies to the user's original message.
    answer = next(m for m in bot.replies_in(7001) if m.text == "Here is the plan.")
    assert answer.reply_to is not None


async def test_kill_9_after_a_side_effect_tells_the_chat(
    data_dir: Path, fakes: tuple[FakeOpenAI, FakeBotApi]
) -> None:
    model, bot = fakes
    model.enqueue(Reply(chunks=(), tool_calls=(ToolCall("stamp", '{"note": "x"}'),)))
    model.default = SLOW
    env = serve_env(data_dir, model, bot, AGENTHUB_TOOLS="tests.test_recovery_kill:stamp")
    served, _ = await start(env)
    try:
        await bot.user_says("stamp it", chat_id=7002)
        await wait_for(lambda: len(model.requests) >= 2)  # the tool ran; the reply streams
        await asyncio.sleep(0.3)
        await kill_9(served)
    finally:
        served.stop()
    asked = len(model.requests)
    served, _ = await start(env)
    try:
        await wait_for(lambda: any("Nothing was re-run" in t for t in bot.texts_in(7002)))
        result = await asyncio.to_thread(served_ctl, env, "history", "--agent", "main", "--json")
    finally:
        served.stop()
    (notice,) = [t for t in bot.texts_in(7002) if "Nothing was re-run" in t]
    assert "stamp" in notice
    assert len(model.requests) == asked  # nothing was asked again
    assert [status for _, status in runs(data_dir)] == ["interrupted"]
    # History shows it: the note, marked aborted, after the tool call.
    entries = json.loads(result)["result"]["entries"]
    assert entries[-1]["role"] == "assistant" and entries[-1]["aborted"] is True
    assert [e["type"] for e in entries] == ["message", "tool", "message"]


def served_ctl(env: dict[str, str], *args: str) -> str:
    result = run_cli("ctl", *args, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


# More rounds for a measurement: AGENTHUB_TEST_KILL_ROUNDS=30.
ROUNDS = int(os.environ.get("AGENTHUB_TEST_KILL_ROUNDS", "4"))


async def test_kill_9_at_random_moments_loses_no_question(
    data_dir: Path, fakes: tuple[FakeOpenAI, FakeBotApi]
) -> None:
    """Each round: a question, kill -9 at a random moment of its reply, restart. In the end
    every question is in the session once and has exactly one completed answer, and no run
    is left open."""
    model, bot = fakes
    model.default = Reply(chunks=tuple(f"w{i} " for i in range(12)), chunk_delay=0.05)
    env = serve_env(data_dir, model, bot)
    chance = random.Random(1509)
    served, _ = await start(env)
    try:
        for round_ in range(ROUNDS):
            text = f"question {round_}"
            await bot.user_says(text, chat_id=7003)
            await wait_for(asked_about(model, text))
            await asyncio.sleep(chance.uniform(0.0, 0.8))
            await kill_9(served)
            served.stop()
            served, _ = await start(env)
            # Answered (before the kill, or again after it) before the next question.
            await wait_for(answered(data_dir, round_ + 1))
    finally:
        served.stop()
    assert questions(data_dir) == [f"question {i}" for i in range(ROUNDS)]
    statuses = [status for _, status in runs(data_dir)]
    assert statuses.count("completed") == ROUNDS
    assert set(statuses) <= {"completed", "interrupted"}
    assert transcript(data_dir)[-1]["type"] == "run"  # nothing left open


def asked_about(model: FakeOpenAI, text: str) -> Callable[[], bool]:
    return lambda: any(text in json.dumps(r.messages) for r in model.requests)


def answered(data_dir: Path, count: int) -> Callable[[], bool]:
    return lambda: completed(data_dir) >= count


def completed(data_dir: Path) -> int:
    try:
        return sum(1 for _, status in runs(data_dir) if status == "completed")
    except (AssertionError, ValueError):
        return 0
