"""The Telegram channel end to end: the real python-telegram-bot Application, embedded in the
hub's loop, against the local fake Bot API server; an in-process hub and ChannelManager."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

import pytest
from aiohttp import ClientSession, web

from channels.manager import HELP_TEXT
from channels.telegram.formatting import render_html
from hub.errors import ModelError
from hub.origin import Origin
from tests.conftest import free_port
from tests.fake_bot_api import LIMIT, SECRET_HEADER, FakeBotApi, parse_html, utf16_len
from tests.telegram_rig import (
    ScriptedModel,
    expected_blocks,
    long_markdown,
    telegram_health,
    telegram_rig,
    until,
)

CHAT = 1001


def _has_reply(api: FakeBotApi, chat_id: int) -> bool:
    return bool(api.replies_in(chat_id))


async def test_long_reply_arrives_in_blocks_in_order_exactly_once(data_dir: Path) -> None:
    text = long_markdown()
    async with telegram_rig(data_dir, ScriptedModel(text, pieces=12)) as rig:
        asked = await rig.api.user_says("write me a long answer")
        await until(lambda: bool(rig.api.replies_in(CHAT)), "the first block")
        await rig.settle()
        replies = rig.api.replies_in(CHAT)
        expected = expected_blocks(text, 12)
        assert len(expected) >= 5
        assert [m.raw for m in replies] == expected
        assert rig.api.calls["sendMessage"] == len(expected)
        for message in replies:
            assert message.parse_mode == "HTML"
            assert utf16_len(message.raw) <= LIMIT
            assert utf16_len(parse_html(message.raw)) <= LIMIT
        assert replies[0].reply_to == asked
        assert all(m.reply_to is None for m in replies[1:])
        assert rig.hub.last_route.route is not None
        assert rig.hub.last_route.route.chat_id == str(CHAT)


async def test_reply_to_a_web_or_desktop_turn_never_reaches_the_chat(data_dir: Path) -> None:
    async with telegram_rig(data_dir, ScriptedModel(pieces=3, delay=0.2)) as rig:
        await rig.api.user_says("from telegram")
        await until(lambda: rig.agent.busy, "the telegram run")
        # Web writes while the Telegram turn runs: lastRoute still names Telegram.
        rig.hub.last_route.clear()
        rig.agent.write("from the web", Origin(surface="web", device_id="web-1"))
        rig.agent.write("from the desktop", Origin(surface="desktop"))
        await rig.settle()
        assert rig.api.texts_in(CHAT) == ["from telegram"]
        assert rig.hub.last_route.route is None
        # Even with lastRoute pointing at Telegram, a desktop turn's reply stays there.
        await rig.api.user_says("again from telegram")
        await rig.settle()
        rig.agent.write("desktop after telegram", Origin(surface="desktop"))
        await rig.settle()
        assert rig.api.texts_in(CHAT) == ["from telegram", "again from telegram"]


async def test_provider_failure_is_sent_as_error_text(data_dir: Path) -> None:
    model = ScriptedModel(
        delay=0.1, fail=ModelError("rate_limited", "provider is overloaded, try later")
    )
    async with telegram_rig(data_dir, model, typing_interval=0.05) as rig:
        await rig.api.user_says("hello")
        await until(lambda: len(rig.api.replies_in(CHAT)) == 2, "reply and error")
        await rig.settle()
        assert rig.api.texts_in(CHAT) == ["hello", "[Error] provider is overloaded, try later"]
        assert rig.api.replies_in(CHAT)[1].parse_mode is None
        assert rig.manager.typing_chats() == set()
        assert rig.api.chat_actions


async def test_typing_is_refreshed_during_a_run_and_stops_when_it_ends(data_dir: Path) -> None:
    # Typing is refreshed while nothing of the reply is visible (a live reply's first piece
    # stops it), so the run holds before its first piece until the refreshes are seen:
    # however slow the box, they come while it runs.
    hold = asyncio.Event()
    model = ScriptedModel(pieces=4, hold_first=hold)
    async with telegram_rig(data_dir, model, typing_interval=0.05) as rig:
        await rig.api.user_says("take your time")
        await until(lambda: len(rig.api.chat_actions) >= 3, "typing refreshes")
        assert rig.manager.typing_chats() == {("telegram", str(CHAT))}
        hold.set()
        await rig.settle()
        assert rig.manager.typing_chats() == set()
        count = len(rig.api.chat_actions)
        await asyncio.sleep(0.3)  # six refresh intervals
        # At most one request that was already on the wire when the run ended may land.
        assert len(rig.api.chat_actions) <= count + 1
        assert all(action == "typing" for _, action, _ in rig.api.chat_actions)


async def test_commands_help_new_and_stop(data_dir: Path) -> None:
    hold = asyncio.Event()
    async with telegram_rig(data_dir, ScriptedModel(hold=hold), typing_interval=0.05) as rig:
        await rig.api.user_says("/help")
        await until(lambda: len(rig.api.replies_in(CHAT)) == 1, "help")
        assert rig.api.texts_in(CHAT) == [HELP_TEXT]
        before = rig.agent.session.session_id
        await rig.api.user_says("/new")
        await until(lambda: len(rig.api.replies_in(CHAT)) == 2, "new")
        assert rig.agent.session.session_id != before
        assert "new conversation" in rig.api.texts_in(CHAT)[1]
        await rig.api.user_says("a question that takes forever")
        await until(lambda: rig.manager.typing_chats() != set(), "the run to start")
        await rig.api.user_says("/stop")
        await rig.settle()
        assert rig.agent.last_run is not None
        assert rig.agent.last_run.status == "aborted"
        assert "Stopped." in rig.api.texts_in(CHAT)
        assert rig.manager.typing_chats() == set()
        assert rig.api.commands  # setMyCommands registered /new /stop /help


async def test_pairing_flow_end_to_end(data_dir: Path) -> None:
    async with telegram_rig(data_dir, ScriptedModel(), dm_policy="pairing") as rig:
        await rig.api.user_says("hello, may I?", chat_id=5005)
        await until(lambda: bool(rig.api.replies_in(5005)), "the pairing code")
        pending = rig.hub.access.pending()
        assert len(pending) == 1
        assert pending[0].subject == "telegram:5005"
        code = pending[0].code
        assert code in rig.api.texts_in(5005)[0]
        await rig.api.user_says("still nothing?", chat_id=5005)
        await until(lambda: len(rig.api.replies_in(5005)) == 2, "the same code again")
        assert code in rig.api.texts_in(5005)[1]
        assert rig.agent.history() == []
        assert rig.agent.last_run is None

        rig.hub.access.approve(code)
        await until(lambda: len(rig.api.replies_in(5005)) == 3, "the approval notice")
        assert "You're in" in rig.api.texts_in(5005)[2]
        await rig.api.user_says("now I can talk", chat_id=5005)
        await until(lambda: len(rig.api.replies_in(5005)) == 4, "the agent's reply")
        await rig.settle()
        assert rig.api.texts_in(5005)[3] == "now I can talk"


async def test_pairing_denied_user_is_told_and_stays_out(data_dir: Path) -> None:
    async with telegram_rig(data_dir, ScriptedModel(), dm_policy="pairing") as rig:
        await rig.api.user_says("hi", chat_id=6006)
        await until(lambda: bool(rig.hub.access.pending()), "a pairing request")
        rig.hub.access.deny(rig.hub.access.pending()[0].code)
        await until(lambda: len(rig.api.replies_in(6006)) == 2, "the denial notice")
        assert "declined" in rig.api.texts_in(6006)[1]
        assert not rig.plugin.is_allowed("6006")


@pytest.mark.parametrize(
    ("policy", "allowed", "answered", "ignored"),
    [
        ("allowlist", [42], [42], [43]),
        ("allowlist", [], [], [42]),
        ("open", [], [42, 43], []),
        ("disabled", [42], [], [42, 43]),
    ],
)
async def test_dm_policies(
    data_dir: Path, policy: str, allowed: list[int], answered: list[int], ignored: list[int]
) -> None:
    async with telegram_rig(
        data_dir, ScriptedModel(), dm_policy=policy, allowed_users=allowed
    ) as rig:
        for user in ignored + answered:
            await rig.api.user_says(f"hi from {user}", chat_id=user)
        total = len(ignored + answered)
        await until(lambda: rig.plugin.updates_received == total, "every update handled")
        for user in answered:
            await until(partial(_has_reply, rig.api, user), f"reply to {user}")
        await rig.settle()
        for user in answered:
            assert rig.api.texts_in(user) == [f"hi from {user}"]
        for user in ignored:
            assert rig.api.replies_in(user) == []
        assert rig.hub.access.pending() == []
        agent_texts = [e.text for e in rig.agent.history() if e.type == "message"]
        assert not any(f"from {user}" in t for user in ignored for t in agent_texts)


async def test_group_answers_only_mentions_and_replies(data_dir: Path) -> None:
    group = -100555
    # Without recent-context lines, so the echoed turns are exactly what was addressed.
    async with telegram_rig(data_dir, ScriptedModel(), group_context_messages=0) as rig:
        await rig.api.user_says(
            "chatting among ourselves", chat_id=group, user_id=7, chat_type="supergroup"
        )
        await rig.api.user_says(
            "/help@some_other_bot", chat_id=group, user_id=7, chat_type="supergroup"
        )
        await rig.api.user_says(
            "@agenthub_test_bot what is up", chat_id=group, user_id=7, chat_type="supergroup"
        )
        await until(lambda: bool(rig.api.replies_in(group)), "the mentioned reply")
        await rig.settle()
        assert rig.api.texts_in(group) == ["what is up"]
        bot_message = rig.api.replies_in(group)[0].message_id
        await rig.api.user_says(
            "and a follow-up",
            chat_id=group,
            user_id=7,
            chat_type="supergroup",
            reply_to=bot_message,
        )
        await until(lambda: len(rig.api.replies_in(group)) == 2, "the reply to a reply")
        await rig.settle()
        assert rig.api.texts_in(group) == ["what is up", "and a follow-up"]
        # A group chat has its own session, never the owner's `main`.
        in_group = rig.agent.history(session_key=f"telegram:group:{group}")
        texts = [e.text for e in in_group if e.type == "message" and e.role == "user"]
        assert texts == ["what is up", "and a follow-up"]
        assert rig.agent.history() == []


async def test_group_ignores_unapproved_users_without_leaking_a_code(data_dir: Path) -> None:
    group = -100777
    async with telegram_rig(data_dir, ScriptedModel(), dm_policy="pairing") as rig:
        await rig.api.user_says(
            "@agenthub_test_bot let me in", chat_id=group, user_id=8, chat_type="supergroup"
        )
        await rig.api.user_says("/help", chat_id=CHAT)  # a marker that the first was handled
        await until(lambda: bool(rig.api.replies_in(CHAT)), "the marker")
        await rig.settle()
        assert rig.api.replies_in(group) == []
        assert [p.subject for p in rig.hub.access.pending()] == [f"telegram:{CHAT}"]


async def test_webhook_mode_checks_the_secret_and_dedupes_updates(data_dir: Path) -> None:
    port = free_port()
    secret = "s3cret-token-for-tests"
    api = FakeBotApi()
    await api.start()
    async with telegram_rig(
        data_dir,
        ScriptedModel(),
        api=api,
        webhook_url=f"http://127.0.0.1:{port}/telegram/webhook",
        webhook_secret=secret,
    ) as rig:
        app = web.Application()
        rig.plugin.attach_webhook(app)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            assert api.webhook_url.endswith("/telegram/webhook")
            assert api.webhook_secret == secret
            await api.user_says("by webhook", update_id=900)
            await api.user_says("by webhook", update_id=900)  # Telegram redelivers
            await until(lambda: bool(api.replies_in(CHAT)), "the webhook reply")
            await rig.settle()
            assert api.texts_in(CHAT) == ["by webhook"]
            assert api.webhook_statuses == [200, 200]

            async with ClientSession() as client:
                update = {"update_id": 901, "message": {"message_id": 99, "date": 0,
                          "chat": {"id": CHAT, "type": "private"},
                          "from": {"id": CHAT, "is_bot": False, "first_name": "Mallory"},
                          "text": "forged"}}  # fmt: skip
                url = f"http://127.0.0.1:{port}/telegram/webhook"
                async with client.post(url, json=update) as response:
                    assert response.status == 403
                headers = {SECRET_HEADER: "wrong-secret-value"}
                async with client.post(url, json=update, headers=headers) as response:
                    assert response.status == 403
                async with client.post(url, data=b"[1,2]", headers={SECRET_HEADER: secret}) as r:
                    assert r.status == 400
            await rig.settle()
            assert api.texts_in(CHAT) == ["by webhook"]
            health = telegram_health(rig.hub)
            assert health.status == "ok"
            assert health.detail == "webhook"
        finally:
            await runner.cleanup()
    await api.stop()


async def test_markdown_is_rendered_and_raw_html_escaped(data_dir: Path) -> None:
    text = "**bold** and <script>alert(1)</script> [link](https://example.com/?a=1&b=2)"
    async with telegram_rig(data_dir, ScriptedModel(text)) as rig:
        await rig.api.user_says("format please")
        await until(lambda: bool(rig.api.replies_in(CHAT)), "the reply")
        await rig.settle()
        message = rig.api.replies_in(CHAT)[0]
        assert message.raw == render_html(text)
        assert "<script>" not in message.raw
        assert message.text == "bold and <script>alert(1)</script> link"
