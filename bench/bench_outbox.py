"""What the durable outbox costs beyond its fsyncs, side by side with a bare baseline.

Blocks through `channels.outbox.Outbox` to a chat app that accepts every send at once, with
the journal on disk (a `put` and a `done` record per block, each appended and fsynced),
against the bare cost of that durability: the same two records per block appended and
fsynced directly with `hub.jsonl_files.append_line`, nothing else. Blocks per wall-clock
second (it is mostly waiting for fsync), one chat. Target: >= 0.7x the bare rate (the queue,
its worker and the pydantic records cost little next to the fsyncs).

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
from hub.jsonl_files import append_line
from hub.origin import ChannelRoute

BLOCKS = 300
REPEATS = 7


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


async def outbox_rate(folder: Path) -> float:
    store = OutboxStore(folder / "outbox.jsonl")
    outbox = Outbox(store)
    chat = InstantChat()
    route = ChannelRoute(channel="bench", chat_id="1")
    began = time.perf_counter()
    for index in range(BLOCKS):
        outbox.put(Outgoing(chat, route, f"block {index}"))
        await outbox.drain()
    elapsed = time.perf_counter() - began
    await outbox.close(0)
    assert outbox.sent == BLOCKS and not store.entries
    return BLOCKS / elapsed


async def bare_rate(folder: Path) -> float:
    path = folder / "bare.jsonl"
    path.touch(mode=0o600)
    began = time.perf_counter()
    for index in range(BLOCKS):
        append_line(path, b'{"op": "put", "id": %d, "text": "block"}\n' % index, create=False)
        await asyncio.sleep(0)  # the hand-over to a worker
        append_line(path, b'{"op": "done", "id": %d}\n' % index, create=False)
    return BLOCKS / (time.perf_counter() - began)


async def main() -> int:
    bare: list[float] = []
    durable: list[float] = []
    for _ in range(REPEATS):
        with tempfile.TemporaryDirectory() as folder:
            bare.append(await bare_rate(Path(folder)))
        with tempfile.TemporaryDirectory() as folder:
            durable.append(await outbox_rate(Path(folder)))
    ok = report(
        "outbox blocks/s with its journal vs the bare fsynced appends",
        baseline=statistics.median(bare),
        candidate=statistics.median(durable),
        unit="blocks/s",
        target=0.7,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
