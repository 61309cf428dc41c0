"""The outbox journal on disk: what is pending survives a reopen with its facts, in order;
a corrupt or truncated file keeps every good line (one warning); compaction; file modes."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest

from channels.outbox import Outbox
from channels.outbox_store import Facts, OutboxStore
from hub.origin import ChannelRoute


def route(chat: str = "1001") -> ChannelRoute:
    return ChannelRoute(channel="telegram", chat_id=chat, reply_to_message_id="5")


def test_pending_entries_and_their_facts_survive_a_reopen_in_order(data_dir: Path) -> None:
    path = data_dir / "outbox.jsonl"
    store = OutboxStore(path)
    first = store.put(route(), "reply", "one")
    second = store.put(route(), "send", "two", plain=True)
    third = store.put(route("1002"), "live", facts={"reply": True})
    attempt: Facts = {"0.floor": 5, "0.text": "<b>one</b>"}
    first.note(**attempt)
    confirmed: Facts = {"0.id": 6}
    first.note(**confirmed)
    second.done()
    third.note(final="**done**", message="9")

    again = OutboxStore(path)
    tickets = again.tickets()
    assert [t.entry.text for t in tickets] == ["one", ""]
    assert tickets[0].facts == {"0.floor": 5, "0.text": "<b>one</b>", "0.id": 6}
    assert tickets[0].entry.kind == "reply" and tickets[0].entry.route == route()
    assert tickets[1].facts == {"reply": True, "final": "**done**", "message": "9"}
    assert tickets[0].at == first.at  # the retry deadline counts from the first record
    assert again.backlog("telegram") == {"1001": (1, first.at), "1002": (1, third.at)}
    # New entries after a reopen never reuse a pending one's id.
    assert again.put(route(), "send", "four").entry.id > third.entry.id
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700


def test_a_corrupt_or_truncated_file_keeps_the_good_lines_and_warns_once(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = data_dir / "outbox.jsonl"
    store = OutboxStore(path)
    store.put(route(), "send", "kept one")
    gone = store.put(route(), "send", "delivered")
    store.put(route(), "send", "kept two")
    gone.done()
    lines = path.read_bytes().splitlines(keepends=True)
    put = json.loads(lines[0])
    put["entry"]["id"] = 99
    put["entry"]["text"] = "torn"
    torn = json.dumps(put).encode()[:-20]  # a record cut short by a crash, no newline
    garbage = [b"\x00\xff not json\n", b'{"op": "put", "entry": {"id": "x"}}\n', b"[1, 2]\n"]
    path.write_bytes(lines[0] + garbage[0] + b"".join(lines[1:]) + b"".join(garbage[1:]) + torn)

    with caplog.at_level(logging.WARNING, logger="agenthub.channels"):
        again = OutboxStore(path)
    assert [t.entry.text for t in again.tickets()] == ["kept one", "kept two"]
    assert again.skipped == 4
    warnings = [r for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(warnings) == 1 and "skipped 4" in warnings[0].getMessage()
    # The file was rewritten with the good entries only: the next open is clean.
    assert OutboxStore(path).skipped == 0
    assert len(path.read_bytes().splitlines()) == 2


def test_done_entries_are_compacted_away(data_dir: Path) -> None:
    path = data_dir / "outbox.jsonl"
    store = OutboxStore(path, compact_after=10)
    pending = store.put(route(), "send", "waiting")
    for index in range(25):
        store.put(route(), "send", f"block {index}").done()
    # Compacted after 10 and 20 dones: the pending entry and the 5 records since remain.
    assert len(path.read_bytes().splitlines()) == 1 + 5 * 2
    assert [t.entry.id for t in OutboxStore(path).tickets()] == [pending.entry.id]


def test_facts_about_a_chat_outlive_its_entries_through_compaction(data_dir: Path) -> None:
    path = data_dir / "outbox.jsonl"
    store = OutboxStore(path, compact_after=2)
    first = store.put(route(), "send", "one")
    first.note_with_chat({"0.id": 7}, {"newest": 7})
    first.done()
    assert OutboxStore(path).chat(route()) == {"newest": 7}  # replayed from the note
    second = store.put(route(), "send", "two")
    second.note_with_chat({"0.id": 9}, {"newest": 9})
    second.done()  # the second done: compacted, no entry left
    store.put(route("1002"), "send", "three")
    reopened = OutboxStore(path)
    assert reopened.chat(route()) == {"newest": 9}
    assert reopened.chat(route("1002")) == {}
    assert [t.entry.text for t in reopened.tickets()] == ["three"]
    assert reopened.tickets()[0].chat == {}


def test_a_journal_that_cannot_be_written_is_logged_and_delivery_goes_on(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = data_dir / "outbox.jsonl"
    store = OutboxStore(path)
    path.unlink()  # removed under the running hub
    with caplog.at_level(logging.ERROR, logger="agenthub.channels"):
        ticket = store.put(route(), "send", "still sent")
    assert "recording a delivery failed" in caplog.text
    assert [t.entry.text for t in store.tickets()] == ["still sent"]
    ticket.done()
    assert store.tickets() == []


def test_memory_only_store_writes_nothing(tmp_path: Path) -> None:
    store = OutboxStore(None)
    ticket = store.put(route(), "send", "x")
    ticket.note(seen=1)
    ticket.done()
    assert ticket.finished and list(tmp_path.iterdir()) == []


async def test_entries_of_a_channel_not_configured_now_stay_recorded(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = data_dir / "outbox.jsonl"
    store = OutboxStore(path)
    for text in ("one", "two"):
        store.put(ChannelRoute(channel="gone", chat_id="1"), "send", text)
    outbox = Outbox(OutboxStore(path))
    with caplog.at_level(logging.WARNING, logger="agenthub.channels"):
        assert outbox.resume({}) == set()
    outbox.open()
    await outbox.drain()
    assert [r.getMessage() for r in caplog.records] == [
        "outbox: entries for channel gone wait until it is configured"
    ]
    assert [t.entry.text for t in OutboxStore(path).tickets()] == ["one", "two"]
    await outbox.close(0)
