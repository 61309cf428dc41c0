"""Live replies (edited in place), acks and commands, end to end: the real
python-telegram-bot against the local Bot API server."""

from __future__ import annotations

from pathlib import Path

import pytest

from channels.base import COMMANDS
from channels.commands import HELP_TEXT
from channels.telegram import RateLimits
from channels.telegram.formatting import utf16_len
from hub.errors import ModelError
from tests.fake_bot_api import TRANSIENT_FAULTS, FakeBotApi
from tests.telegram_rig import (
    ScriptedModel,
    expected_blocks,
    long_markdown,
    telegram_rig,
    until,
)

CHAT = 1001
LIVE_METHODS = {"sendMessage", "editMessageText"}


def long_reply() -> str:
    """10k+ characters of Markdown with a 200-line fence and a table."""
    code = "\n".join(
        f"for i{j} in range({j}): total += i{j} * 2  # <{j}> & more" for j in range(200)
    )
    rows = "\n".join(f"| item {j} | {j * 7} | <b>not bold</b> & co |" for j in range(30))
    prose = " ".join(f"Sentence {j} explains *why* the code does `x<{j}>`." for j in range(60))
    text = (
        f"# Results\n\n{prose}\n\n```python\n{code}\n```\n\n| a | b | c |\n|---|---|---|\n{rows}\n"
    )
    text += f"\n{prose}\n\nThat is all."
    assert len(text) > 10_000
    return text


async def test_a_long_reply_streams_into_edited_messages_exactly(data_dir: Path) -> None:
    text = long_reply()
    api = FakeBotApi(hang_seconds=1.5, enforce_limits=True)
    await api.start()
    model = ScriptedModel(text, pieces=120, delay=0.03)
    try:
        async with telegram_rig(
            data_dir,
            model,
            api=api,
            edit_interval=1.0,
            rate_limits=RateLimits(),  # Telegram's: one call a second per chat
        ) as rig:
            asked = await rig.api.user_says("explain")
            await until(lambda: bool(rig.api.replies_in(CHAT)), "the first visible text")
            assert rig.agent.busy  # visible while the model still streams
            await until(lambda: rig.agent.last_run is not None, "the run's end", limit=60)
            await rig.settle()
            replies = rig.api.replies_in(CHAT)
            assert [m.raw for m in replies] == expected_blocks(text, 120)
            assert all(utf16_len(m.text) <= 4096 for m in replies)
            assert replies[0].reply_to == asked
            assert rig.api.edits  # it grew in place
            assert rig.api.rate_violations == 0
            assert rig.plugin.sender.stats.rate_limited == 0
    finally:
        await api.stop()


@pytest.mark.parametrize("rate", [0.2, 0.5])
async def test_a_streamed_reply_is_character_exact_under_failures(
    data_dir: Path, rate: float
) -> None:
    text = long_markdown(sections=3)
    api = FakeBotApi(hang_seconds=1.2)
    await api.start()
    api.fault_methods = set(LIVE_METHODS)
    api.fault_kinds = TRANSIENT_FAULTS
    api.fault_rate = rate
    model = ScriptedModel(text, pieces=150, delay=0.04)
    try:
        async with telegram_rig(
            data_dir, model, api=api, edit_interval=0.2, live_attempts=40, read_timeout=1.0
        ) as rig:
            await rig.api.user_says("go")
            await until(lambda: bool(rig.api.replies_in(CHAT)), "the first visible text")
            # Then a run of eight failures, whatever the random draw does.
            api.faults.extend(["502", "timeout_lost", "429", "drop_lost", "502", "drop_landed",
                               "timeout_landed", "502"])  # fmt: skip
            await until(lambda: rig.agent.last_run is not None, "the run's end", limit=60)
            await rig.settle()
            replies = rig.api.replies_in(CHAT)
            assert [m.raw for m in replies] == expected_blocks(text, 150)
            assert api.longest_fault_run >= 8
            assert set(api.faults_injected) == set(TRANSIENT_FAULTS)
            assert rig.plugin.sender.stats.gave_up == 0
            assert rig.plugin.sender.stats.edit_calls > 0  # edits met the failures too
    finally:
        await api.stop()


async def test_tool_status_shows_while_it_runs_and_leaves_no_trace(data_dir: Path) -> None:
    model = ScriptedModel("Let me look that up.", pieces=2, tool_between=True, tool_delay=1.0)
    async with telegram_rig(data_dir, model, edit_interval=0.05) as rig:
        await rig.api.user_says("search please")
        await until(
            lambda: any("running search" in m.text for m in rig.api.replies_in(CHAT)),
            "the status line",
        )
        await until(lambda: rig.agent.last_run is not None, "the run's end")
        await rig.settle()
        texts = rig.api.texts_in(CHAT)
        assert texts == ["Let me look that up.", "After the tool."]
        assert not any("secret tool args" in t or "TOOL RESULT" in t for t in texts)


async def test_acks_and_typing_until_text_is_visible(data_dir: Path) -> None:
    model = ScriptedModel("Here you go.", pieces=3, delay=0.4)
    async with telegram_rig(data_dir, model, typing_interval=0.05) as rig:
        asked = await rig.api.user_says("hello")
        await until(lambda: bool(rig.api.replies_in(CHAT)), "the first text")
        visible_at = rig.api.replies_in(CHAT)[0].at
        await until(lambda: rig.agent.last_run is not None, "the run's end")
        await rig.settle()
        await until(lambda: rig.api.reactions.get((CHAT, asked)) == ["👍"], "the done reaction")
        log = [emojis for chat, message, emojis in rig.api.reaction_log if message == asked]
        assert log == [("👀",), ("👍",)]
        before = [a for a in rig.api.chat_actions if a[2] <= visible_at]
        after = [a for a in rig.api.chat_actions if a[2] > visible_at]
        assert before
        assert len(after) <= 1  # at most one indicator already on its way
        assert rig.api.texts_in(CHAT) == ["Here you go."]


async def test_a_failed_run_removes_the_ack_and_shows_safe_error_text(data_dir: Path) -> None:
    failure = ModelError(
        "auth",
        "the OpenAI API at https://api.example.com/v1 refused the API key sk-live-abcdefgh12345 "
        "(HTTP 401): set OPENAI_API_KEY to a valid key",
    )
    async with telegram_rig(data_dir, ScriptedModel(delay=0.05, fail=failure)) as rig:
        asked = await rig.ask("hello")
        await until(lambda: (CHAT, asked) in rig.api.reactions, "the ack")
        await until(lambda: rig.api.reactions[(CHAT, asked)] == [], "the ack removed")
        texts = rig.api.texts_in(CHAT)
        assert texts[0] == "hello"
        error = texts[1]
        assert error.startswith("[Error] the OpenAI API refused the API key")
        assert "set OPENAI_API_KEY" in error
        for leak in ("https://", "api.example.com", "sk-live"):
            assert leak not in error


async def test_commands_are_registered_and_answered_without_a_model_turn(
    data_dir: Path,
) -> None:
    async with telegram_rig(data_dir, ScriptedModel()) as rig:
        await until(lambda: bool(rig.api.commands), "setMyCommands")
        names = [c["command"] for c in rig.api.commands if isinstance(c, dict)]
        # Every command the plugin knows, in order, but /start (Telegram's own button sends it).
        assert names == [c for c in COMMANDS if c != "start"]
        await rig.api.user_says("/whoami")
        await rig.api.user_says("/frobnicate now")
        await rig.api.user_says("/help")
        await rig.api.user_says("/status")
        await until(lambda: len(rig.api.replies_in(CHAT)) == 4, "four answers")
        await rig.settle()
        whoami, unknown, help_text, status = rig.api.texts_in(CHAT)
        assert whoami == f"Your telegram user id: {CHAT}\nThis chat's id: {CHAT}"
        assert unknown == f"There is no /frobnicate command.\n\n{HELP_TEXT}"
        assert help_text == HELP_TEXT
        assert status.startswith("Model: scripted\nConversation: ")
        assert "idle" in status
        assert rig.agent.last_run is None  # none of them reached the model


async def test_refused_html_in_an_edit_still_shows_the_text(data_dir: Path) -> None:
    api = FakeBotApi(hang_seconds=1.5)
    await api.start()
    api.fault_methods = {"editMessageText"}
    api.faults.extend(["parse"] * 50)
    model = ScriptedModel("**Bold** and <tag> & `code` " * 5, pieces=10, delay=0.05)
    try:
        async with telegram_rig(data_dir, model, api=api, edit_interval=0.05) as rig:
            await rig.ask("go")
            texts = rig.api.texts_in(CHAT)
            assert texts == ["Bold and <tag> & code " * 4 + "Bold and <tag> & code"]
    finally:
        await api.stop()


async def test_streaming_off_sends_finished_blocks_only(data_dir: Path) -> None:
    text = long_markdown(sections=2)
    async with telegram_rig(data_dir, ScriptedModel(text, pieces=20), streaming="off") as rig:
        await rig.ask("blocks please")
        assert [m.raw for m in rig.api.replies_in(CHAT)] == expected_blocks(text, 20)
        assert rig.api.edits == []
