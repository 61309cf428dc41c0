"""EventChannel: a hypothesis model of the overflow policy. Whatever the interleaving of puts
and takes, the channel stays bounded, keeps order, and accounts for every item it did not
deliver (coalesced superseded updates, or drops announced by a ReadGap)."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.events import (
    AgentEvent,
    MessageEnd,
    MessageUpdate,
    ReadGap,
    ReadItem,
    ToolExecutionStart,
)
from hub.fanout import EventChannel

BASE = {"agent_id": "main", "run_id": "r"}

# An op: put an update of message n, end message n, put another event, or take one item.
Op = tuple[str, int]
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("update"), st.integers(0, 2)),
        st.tuples(st.just("end"), st.integers(0, 2)),
        st.tuples(st.just("other"), st.just(0)),
        st.tuples(st.just("take"), st.integers(1, 4)),
    ),
    max_size=120,
)


@dataclass
class Producer:
    seq: int = 0
    texts: dict[int, str] = field(default_factory=dict)
    generation: dict[int, int] = field(default_factory=dict)

    def make(self, op: str, n: int) -> AgentEvent:
        self.seq += 1
        message_id = f"m{n}.{self.generation.get(n, 0)}"
        if op == "other":
            return ToolExecutionStart(
                **BASE, seq=self.seq, tool_call_id="c", tool_name="t", args={}
            )
        if op == "end":
            text = self.texts.pop(n, "")
            self.generation[n] = self.generation.get(n, 0) + 1
            return MessageEnd(
                **BASE, seq=self.seq, message_id=message_id, role="assistant", text=text
            )
        self.texts[n] = self.texts.get(n, "") + f"<{self.seq}>"
        return MessageUpdate(
            **BASE,
            seq=self.seq,
            message_id=message_id,
            role="assistant",
            text=self.texts[n],
            delta=f"<{self.seq}>",
        )


class Reference:
    """The overflow policy written the obvious way (a full rescan to coalesce), to compare the
    channel's incremental bookkeeping against."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: deque[ReadItem] = deque()
        self.gap: list[int] = []

    def put(self, item: AgentEvent) -> None:
        if len(self.items) >= self.limit and not self.coalesce(item):
            dropped = self.items.popleft()
            assert not isinstance(dropped, ReadGap)
            self.gap.append(dropped.seq)
        self.items.append(item)

    def coalesce(self, incoming: AgentEvent) -> bool:
        # The incoming item already supersedes queued updates of its message.
        superseded = (
            {incoming.message_id} if isinstance(incoming, MessageUpdate | MessageEnd) else set()
        )
        kept: deque[ReadItem] = deque()
        for item in reversed(self.items):
            if isinstance(item, MessageUpdate) and item.message_id in superseded:
                continue
            if isinstance(item, MessageUpdate | MessageEnd):
                superseded.add(item.message_id)
            kept.appendleft(item)
        freed = len(self.items) - len(kept)
        self.items = kept
        return freed > 0

    def take_nowait(self) -> ReadItem | None:
        if self.gap:
            gap = ReadGap(
                agent_id="main", dropped=len(self.gap), first_seq=self.gap[0], last_seq=self.gap[-1]
            )
            self.gap = []
            return gap
        return self.items.popleft() if self.items else None


def drain(channel: EventChannel | Reference, count: int, out: list[ReadItem]) -> None:
    for _ in range(count):
        item = channel.take_nowait()
        if item is None:
            return
        out.append(item)


@pytest.mark.parametrize("limit", [2, 3, 8])
@settings(max_examples=150, deadline=None)
@given(ops=OPS)
def test_channel_overflow_policy(limit: int, ops: list[Op]) -> None:
    channel = EventChannel("main", limit)
    reference = Reference(limit)
    producer = Producer()
    put: list[AgentEvent] = []
    out: list[ReadItem] = []
    expected: list[ReadItem] = []
    for op, n in ops:
        if op == "take":
            drain(channel, n, out)
            drain(reference, n, expected)
        else:
            event = producer.make(op, n)
            put.append(event)
            channel.put(event)
            reference.put(event)
            assert len(channel) <= limit
    drain(channel, len(put) + 1, out)
    drain(reference, len(put) + 1, expected)
    assert out == expected

    events = [i for i in out if not isinstance(i, ReadGap)]
    gaps = [i for i in out if isinstance(i, ReadGap)]
    # Order is kept.
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    # Every item put is delivered, coalesced, or announced as dropped: nothing else.
    assert len(events) + channel.coalesced + sum(g.dropped for g in gaps) == len(put)
    assert channel.dropped == sum(g.dropped for g in gaps)
    delivered = set(seqs)
    by_seq = {e.seq: e for e in put}
    missing = [e for e in put if e.seq not in delivered]
    for gap in gaps:
        assert gap.first_seq <= gap.last_seq
    # A gap comes before the items that follow the ones it stands for.
    last_seen = 0
    for item in out:
        if isinstance(item, ReadGap):
            assert item.first_seq > last_seen
            last_seen = item.last_seq
        else:
            assert item.seq > last_seen
            last_seen = item.seq
    # Only superseded updates are coalesced: an update missing without a gap covering it has a
    # later item of the same message that was put after it.
    covered = {s for g in gaps for s in range(g.first_seq, g.last_seq + 1)}
    for event in missing:
        if event.seq in covered:
            continue
        assert isinstance(event, MessageUpdate)
        assert any(
            isinstance(later, MessageUpdate | MessageEnd)
            and later.message_id == event.message_id
            and later.seq > event.seq
            for later in by_seq.values()
        )
    # Nothing was dropped while coalescing could have freed room: with no gap, nothing but
    # superseded updates went missing, so the last text of every message reached the reader.
    if not gaps:
        for message_id in {e.message_id for e in put if isinstance(e, MessageUpdate | MessageEnd)}:
            last = [
                e
                for e in put
                if isinstance(e, MessageUpdate | MessageEnd) and e.message_id == message_id
            ][-1]
            assert last.seq in delivered


async def test_get_waits_for_a_put_and_ends_after_close() -> None:
    channel = EventChannel("main", 4)
    waiting = asyncio.ensure_future(channel.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    event = ToolExecutionStart(**BASE, seq=1, tool_call_id="c", tool_name="t", args={})
    channel.put(event)
    assert await waiting is event
    closing = asyncio.ensure_future(channel.get())
    await asyncio.sleep(0)
    channel.close()
    assert await closing is None
    channel.put(event)  # after close: ignored
    assert len(channel) == 0


def test_limit_is_validated() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        EventChannel("main", 1)
