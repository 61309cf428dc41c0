"""What the durable outbox costs, side by side with the same outbox kept in memory.

Blocks through `channels.outbox.Outbox` to a chat app that accepts every send at once
(nothing but the queue and its journal is measured): the journal appends and fsyncs a `put`
and a `done` record per block, against the same queue with a memory-only store. Blocks per
wall-clock second (the cost is waiting for fsync), for one chat and for 20 chats at once.
Target: >= 0.005x (two fsyncs a block, where the memory queue costs microseconds; a real send
takes tens of milliseconds, and Telegram allows one a second per chat), and the durable rate
itself above Telegram's 30 messages a second overall.

Medians of REPEATS runs, interleaved (the box is shared).

Run: .venv/bin/python bench/bench_outbox.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import report
from channels.base import BlockLimits, ChannelMessage, LiveSurface
from channels.outbox import Outbox, Outgoing
from channels.outbox_store import OutboxStore, Ticket
from hub.health import SubsystemHealth
from hub.origin import ChannelRoute

BLOCKS = 400
REPEATS = 5
TELEGRAM_GLOBAL_RATE = 30.0


class InstantChat:
    """A chat app whose every send succeeds at once."""

    name = "bench"
    limits = BlockLimits(min_chars=10, max_chars=100)
    live: LiveSurface | None = None

    def measure(self, text: str) -> int:
        return len(text)

    async def start(self, on_message: object) -> None: ...
    async def stop(self) -> None: ...

    def probe(self) -> SubsystemHealth:
        return SubsystemHealth(name=self.name, status="ok")

    def is_allowed(self, user_id: str) -> bool:
        return True

    async def ask(self, route: ChannelRoute, text: str, choices: object) -> str | None:
        return None

    async def settle(self, route: ChannelRoute, message_id: str, text: str) -> None: ...

    async def reply_text(
        self, route: ChannelRoute, text: str, *, plain: bool = False, ticket: Ticket | None = None
    ) -> bool:
        return True

    async def send_text(
        self, route: ChannelRoute, text: str, *, plain: bool = False, ticket: Ticket | None = None
    ) -> bool:
        return True

    async def typing(self, route: ChannelRoute) -> None: ...
    async def react(self, route: ChannelRoute, emoji: str | None) -> None: ...

    async def route_incoming(self, message: ChannelMessage) -> None: ...


async def blocks_per_second(durable: bool, chats: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        store = OutboxStore(Path(folder) / "outbox.jsonl" if durable else None)
        outbox = Outbox(store)
        chat = InstantChat()
        routes = [ChannelRoute(channel="bench", chat_id=str(i)) for i in range(chats)]
        began = time.perf_counter()
        for index in range(BLOCKS):
            outbox.put(Outgoing(chat, routes[index % chats], f"block {index}"))
            if index % chats == chats - 1:
                await outbox.drain()
        await outbox.drain()
        elapsed = time.perf_counter() - began
        await outbox.close(0)
        assert outbox.sent == BLOCKS and not store.entries
        return BLOCKS / elapsed


async def main() -> int:
    ok = True
    for chats in (1, 20):
        bare: list[float] = []
        durable: list[float] = []
        for _ in range(REPEATS):
            bare.append(await blocks_per_second(False, chats))
            durable.append(await blocks_per_second(True, chats))
        rate = statistics.median(durable)
        ok &= report(
            f"outbox blocks/s, {chats} chat(s), journal vs memory",
            baseline=statistics.median(bare),
            candidate=rate,
            unit="blocks/s",
            target=0.005,
        )
        ok &= rate > TELEGRAM_GLOBAL_RATE
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
