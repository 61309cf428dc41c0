"""The durable outbox with the real Telegram plugin (python-telegram-bot against the local Bot
API server), in process: what an earlier process left in the journal is finished on start,
before anything new and without repeating what already landed; a permanent refusal ends an
entry with its reason logged; a corrupt journal keeps its good lines; health shows each
chat's backlog while the Bot API is down."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from channels.outbox_store import Facts, OutboxStore
from channels.telegram.formatting import render_html
from hub.origin import ChannelRoute
from tests.fake_bot_api import ApiError, FakeBotApi, StoredMessage
from tests.telegram_rig import ScriptedModel, telegram_rig, until
from tests.telegram_rig import telegram_health as health

CHAT = 1001


def route(chat: int = CHAT, reply_to: int | None = None) -> ChannelRoute:
    return ChannelRoute(
        channel="telegram",
        chat_id=str(chat),
        reply_to_message_id=str(reply_to) if reply_to else None,
        user_id=str(chat),
    )


def earlier_question(api: FakeBotApi, chat_id: int) -> int:
    """A user's message answered by an earlier process (no update left to deliver)."""
    chat = api.chat(chat_id)
    message = StoredMessage(chat_id, chat.next_id, False, "?", "?", None, None, 0.0)
    chat.messages[message.message_id] = message
    chat.next_id += 1
    return message.message_id


def attempt(floor: int, text: str) -> Facts:
    """What a plain-text send notes before its request goes out."""
    return {"0.floor": floor, "0.text": text, "0.html": False}


def journal(data_dir: Path) -> OutboxStore:
    return OutboxStore(data_dir / "outbox.jsonl")


async def test_pending_entries_go_first_in_order_and_nothing_landed_is_resent(
    data_dir: Path,
) -> None:
    api = FakeBotApi(hang_seconds=1.5)
    await api.start()
    asked = earlier_question(api, CHAT)
    landed = api.bot_said(CHAT, "Block one")  # sent by the dead process, unconfirmed
    store = journal(data_dir)
    # Block one: attempted, landed, but the crash came before its id was noted.
    store.put(route(reply_to=asked), "reply", "Block one", plain=True).note(
        **attempt(asked, "Block one")
    )
    # Block two: attempted, did not land. Block three: recorded, never attempted.
    store.put(route(), "send", "Block two", plain=True).note(**attempt(landed, "Block two"))
    store.put(route(), "send", "Block *three*")
    # A live reply in another chat: its first message posted, then cut off before its final
    # edit; its second one finished but never posted.
    earlier_question(api, 1002)
    preview = api.bot_said(1002, "Live par")
    store.put(route(1002), "live", facts={"reply": True, "final": "Live **part**"}).note(
        message=str(preview)
    )
    store.put(route(1002), "live", facts={"reply": False, "final": "Live rest"})
    # A third chat's reply never finished (its run was interrupted): left as it is.
    earlier_question(api, 1003)
    cut = api.bot_said(1003, "Cut sh")
    store.put(route(1003), "live", facts={"reply": True}).note(message=str(cut))
    try:
        async with telegram_rig(data_dir, ScriptedModel("The new reply."), api=api) as rig:
            await until(lambda: len(api.replies_in(CHAT)) >= 3, "the left-over blocks")
            await until(lambda: len(api.replies_in(1002)) >= 2, "the live reply's rest")
            await rig.ask("a new question")
            assert api.texts_in(CHAT) == ["Block one", "Block two", "Block three", "The new reply."]
            assert api.texts_in(1002) == ["Live part", "Live rest"]
            assert api.texts_in(1003) == ["Cut sh"]
            assert rig.plugin.sender.stats.probe_landed == 1
            assert rig.manager.outbox.store.tickets() == []
    finally:
        await api.stop()
    assert journal(data_dir).tickets() == []


async def test_a_permanent_refusal_ends_the_entry_with_its_reason_logged(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = FakeBotApi(hang_seconds=1.5)
    await api.start()
    api.refusing[CHAT] = ApiError(403, "Forbidden: bot was blocked by the user")
    api.refusing[-5] = ApiError(400, "Bad Request: chat not found")
    try:
        async with telegram_rig(data_dir, ScriptedModel("Nobody reads this."), api=api) as rig:
            with caplog.at_level(logging.ERROR, logger="agenthub.telegram"):
                await rig.ask("hello")
                assert rig.manager.deliver(route(-5), "A report for a gone group.")
                await rig.manager.drain()
            assert api.replies_in(CHAT) == [] and api.replies_in(-5) == []
            assert rig.manager.outbox.store.tickets() == []  # ended, not retried for ever
            refusals = [r.getMessage() for r in caplog.records if "for good" in r.getMessage()]
            assert len(refusals) == 2
            assert "bot was blocked by the user" in refusals[0]
            assert "chat not found" in refusals[1].lower()
            assert rig.plugin.sender.stats.refused == 2
            # Another chat is unaffected.
            await rig.ask("hi", chat_id=1002)
            assert api.texts_in(1002) == ["Nobody reads this."]
    finally:
        await api.stop()


async def test_a_corrupt_outbox_file_keeps_the_good_entries(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = journal(data_dir)
    store.put(route(), "send", "Still *delivered*")
    store.put(route(), "send", "Also delivered")
    path = data_dir / "outbox.jsonl"
    good = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(good[0] + b"{not json at all\n" + good[1] + b'{"op": "put", "ent')
    with caplog.at_level(logging.WARNING, logger="agenthub.channels"):
        async with telegram_rig(data_dir, ScriptedModel("Fine.")) as rig:
            await until(lambda: len(rig.api.replies_in(CHAT)) >= 2, "the good entries")
            await rig.manager.drain()
            assert [m.raw for m in rig.api.replies_in(CHAT)] == [
                render_html("Still *delivered*"),
                render_html("Also delivered"),
            ]
    assert len([r for r in caplog.records if "unreadable" in r.getMessage()]) == 1
    assert journal(data_dir).tickets() == [] and journal(data_dir).skipped == 0


async def test_health_shows_the_backlog_while_the_bot_api_is_down(data_dir: Path) -> None:
    api = FakeBotApi(hang_seconds=1.5)
    await api.start()
    port = api.port
    try:
        async with telegram_rig(data_dir, ScriptedModel("Waits for the API."), api=api) as rig:
            await rig.ask("first")
            await api.stop()  # every call is refused from now on
            assert rig.manager.deliver(route(), "Queued during the outage.")
            assert rig.manager.deliver(route(), "And another.")
            await until(lambda: "backlog" in health(rig.hub).detail, "the backlog in health")
            assert f"chat {CHAT}: 2 waiting" in health(rig.hub).detail
            api = FakeBotApi(hang_seconds=1.5)
            await api.start(port)
            await until(lambda: len(api.replies_in(CHAT)) >= 2, "delivery after the outage", 60)
            await rig.manager.drain()
            assert api.texts_in(CHAT) == ["Queued during the outage.", "And another."]
            assert "backlog" not in health(rig.hub).detail
    finally:
        await api.stop()


async def test_a_send_retried_past_its_retry_time_ends_with_a_logged_reason(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = FakeBotApi(hang_seconds=1.5)
    await api.start()
    try:
        async with telegram_rig(
            data_dir, ScriptedModel("Hi."), api=api, send_retry_seconds=1.0
        ) as rig:
            await rig.ask("first")
            api.faults.extend(["502"] * 100)  # the Bot API fails every send for a while
            with caplog.at_level(logging.ERROR, logger="agenthub.telegram"):
                assert rig.manager.deliver(route(), "Never accepted.")
                await rig.manager.drain()
            assert "gave up on a message to chat 1001" in caplog.text
            assert rig.manager.outbox.store.tickets() == []
            assert api.texts_in(CHAT) == ["Hi."]
    finally:
        await api.stop()


async def test_a_resumed_reply_probes_from_its_edited_message_and_sends_nothing_twice(
    data_dir: Path,
) -> None:
    """A restarted process resumes a live reply: its first message only needs its final edit,
    its second was never posted. The post's answer is lost although it landed; the edited
    message is the probe's floor, so the probe finds the post instead of sending it again."""
    api = FakeBotApi(hang_seconds=1.5)
    await api.start()
    earlier_question(api, CHAT)
    first = api.bot_said(CHAT, "Part o")
    store = journal(data_dir)
    store.put(route(), "live", facts={"reply": True, "final": "Part one"}).note(message=str(first))
    store.put(route(), "live", facts={"reply": False, "final": "Part two"})
    api.faults.append("drop_landed")
    try:
        async with telegram_rig(data_dir, ScriptedModel("unused"), api=api) as rig:
            await until(lambda: rig.manager.outbox.store.tickets() == [], "the resumed reply")
            assert api.texts_in(CHAT) == ["Part one", "Part two"]
            assert rig.plugin.sender.stats.probe_landed == 1
    finally:
        await api.stop()
