"""The Telegram channel under faults: flaky sends, ambiguous sends, refused HTML, stalled and
conflicting polls. Real python-telegram-bot against the fake Bot API server."""

from __future__ import annotations

from pathlib import Path

import pytest

from channels.base import ChannelMessage
from channels.telegram import TelegramPlugin, TelegramStartError
from hub.hub import Hub
from tests.fake_bot_api import TRANSIENT_FAULTS, FakeBotApi, FaultKind
from tests.telegram_rig import (
    ScriptedModel,
    expected_blocks,
    fast_config,
    long_markdown,
    telegram_health,
    telegram_rig,
    until,
)

CHAT = 1001


async def test_every_block_arrives_once_and_in_order_with_20_percent_failures(
    data_dir: Path,
) -> None:
    api = FakeBotApi(hang_seconds=1.5)
    await api.start()
    api.fault_every = 5  # one sendMessage call in five fails
    api.fault_kinds = TRANSIENT_FAULTS
    turns = ["one", "two", "three", "four", "five", "six"]
    text = long_markdown(sections=4)
    try:
        async with telegram_rig(data_dir, ScriptedModel(text, pieces=10), api=api) as rig:
            expected: list[str] = []
            for turn in turns:
                await rig.ask(f"question {turn}")
                expected += expected_blocks(text, 10)
            assert [m.raw for m in api.replies_in(CHAT)] == expected
            assert set(api.faults_injected) == set(TRANSIENT_FAULTS)
            assert sum(api.faults_injected.values()) * 5 <= api.calls["sendMessage"] + 4
            stats = rig.plugin.sender.stats
            assert stats.gave_up == 0
            assert stats.delivered == len(expected)
    finally:
        await api.stop()


@pytest.mark.parametrize(
    ("fault", "probed_landed"),
    [
        ("timeout_landed", True),
        ("timeout_lost", False),
        ("drop_landed", True),
        ("drop_lost", False),
        ("502", False),
        ("429", False),
    ],
)
async def test_a_failed_send_is_delivered_exactly_once(
    data_dir: Path, fault: FaultKind, probed_landed: bool
) -> None:
    async with telegram_rig(data_dir, ScriptedModel("The one and only reply.")) as rig:
        rig.api.faults.append(fault)
        asked = await rig.ask("hello")
        replies = rig.api.replies_in(CHAT)
        assert [m.text for m in replies] == ["The one and only reply."]
        assert replies[0].reply_to == asked
        stats = rig.plugin.sender.stats
        assert stats.probe_landed == (1 if probed_landed else 0)
        assert stats.rate_limited == (1 if fault == "429" else 0)
        assert rig.api.faults_injected == {fault: 1}


async def test_refused_html_is_resent_as_plain_text(data_dir: Path) -> None:
    model = ScriptedModel("**Bold** <tag> & `code`")
    async with telegram_rig(data_dir, model, streaming="off") as rig:
        rig.api.faults.append("parse")
        await rig.ask("hello")
        replies = rig.api.replies_in(CHAT)
        assert len(replies) == 1
        assert replies[0].parse_mode is None
        assert replies[0].text == "Bold <tag> & code"
        assert rig.plugin.sender.stats.plain_fallbacks == 1


async def test_watchdog_restarts_a_stalled_poll(data_dir: Path) -> None:
    api = FakeBotApi()
    await api.start()
    api.stall_polls = 1
    try:
        async with telegram_rig(
            data_dir,
            ScriptedModel(),
            api=api,
            poll_read_slack=60.0,  # the stalled poll alone would hang for a minute
            watchdog_stall=1.5,
            watchdog_interval=0.1,
        ) as rig:
            await api.user_says("are you there?")
            await until(lambda: bool(api.replies_in(CHAT)), "a reply after the restart")
            await rig.settle()
            assert rig.plugin.poll_restarts >= 1
            assert api.texts_in(CHAT) == ["are you there?"]
            health = telegram_health(rig.hub)
            assert health.status == "ok"
            assert "watchdog restarts" in health.detail
            assert health.age_seconds is not None
    finally:
        await api.stop()


async def test_conflict_is_reported_then_clears(data_dir: Path) -> None:
    api = FakeBotApi()
    await api.start()
    api.conflict_polls = 2
    try:
        async with telegram_rig(data_dir, ScriptedModel(), api=api) as rig:
            await until(lambda: rig.plugin.conflicts >= 1, "a 409 conflict")
            health = telegram_health(rig.hub)
            assert health.status == "down"
            assert "409 Conflict" in health.detail
            await until(lambda: telegram_health(rig.hub).status == "ok", "recovery")
            await api.user_says("after the conflict")
            await until(lambda: bool(api.replies_in(CHAT)), "a reply")
    finally:
        await api.stop()


async def test_rate_limiter_keeps_a_fast_chat_under_the_per_chat_limit(data_dir: Path) -> None:
    api = FakeBotApi(enforce_limits=True)
    await api.start()
    text = long_markdown(sections=2)
    try:
        async with telegram_rig(
            data_dir, ScriptedModel(text, pieces=4), api=api, rate_limits={}
        ) as rig:
            await rig.ask("go")
            assert [m.raw for m in api.replies_in(CHAT)] == expected_blocks(text, 4)
            assert api.rate_violations == 0
            assert rig.plugin.sender.stats.rate_limited == 0
    finally:
        await api.stop()


async def test_unreachable_bot_api_at_start_is_retried_in_the_background(
    data_dir: Path,
) -> None:
    api = FakeBotApi()
    api.reserve_port()  # nothing listens there yet
    async with telegram_rig(data_dir, ScriptedModel(), api=api, reconnect_initial=0.1) as rig:
        health = telegram_health(rig.hub)
        assert health.status == "down"
        assert health.detail.startswith("connecting")
        await api.start(api.port)
        try:
            await until(lambda: telegram_health(rig.hub).status == "ok", "the connection")
            await api.user_says("finally")
            await until(lambda: bool(api.replies_in(CHAT)), "a reply")
        finally:
            await rig.manager.stop()
            await api.stop()


async def test_a_refused_token_fails_start_clearly(data_dir: Path) -> None:
    api = FakeBotApi()
    await api.start()
    hub = Hub(data_dir, ScriptedModel)
    config = fast_config(api, bot_token="999:not-the-token")
    plugin = TelegramPlugin(config, hub.access)
    hub.health.register("telegram", plugin.probe)
    try:
        with pytest.raises(TelegramStartError, match="refused the bot token"):
            await plugin.start(_ignore)
        assert telegram_health(hub).status == "down"
    finally:
        await plugin.stop()
        await hub.close()
        await api.stop()


async def _ignore(message: ChannelMessage) -> None:
    raise AssertionError("nothing should arrive")


async def test_health_is_ok_while_the_first_long_poll_waits(data_dir: Path) -> None:
    api = FakeBotApi()
    await api.start()
    try:
        async with telegram_rig(data_dir, ScriptedModel(), api=api, poll_timeout=20) as rig:
            await until(lambda: api.calls.get("getUpdates", 0) >= 1, "a first poll")
            health = telegram_health(rig.hub)
            assert api.polls_completed == 0
            assert health.status == "ok"
            assert "in progress" in health.detail
    finally:
        await api.stop()


async def test_health_degrades_while_polls_do_not_complete(data_dir: Path) -> None:
    api = FakeBotApi()
    await api.start()
    try:
        async with telegram_rig(data_dir, ScriptedModel(), api=api, poll_read_slack=0.5) as rig:
            await until(lambda: telegram_health(rig.hub).status == "ok", "a first poll")
            api.stall_polls = 2  # each hangs until the client's read timeout
            await until(lambda: telegram_health(rig.hub).status == "degraded", "stale polls")
            assert "last poll" in telegram_health(rig.hub).detail
            await until(lambda: telegram_health(rig.hub).status == "ok", "polls completing")
    finally:
        await api.stop()
