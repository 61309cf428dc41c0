"""Fan-out: events through AsyncAgent to one read() consumer plus two subscribers, against a bare
pipeline of one asyncio.Queue per consumer (three consumers) moving the same event objects.

The agent side is the real run path: a model streams many two-character TextDeltas (yielding to
the event loop after each, as a network stream does); the agent builds every event (updates
carry the full text so far, up to 16,000 characters), persists each turn's entries (fsync) and
fans the events out. The consumers count what they get and keep nothing, as a real surface
forwards and forgets. The bare side replays the very event objects an earlier agent pass
produced through three queues, yielding to the loop after each event too; its reader counts and
its two other consumers call the same kind of callback the agent's subscribers are, so both
sides do the same consumer work and differ only in how events are made and moved.
Two subscriber kinds are measured: plain callbacks (called inline, as the channel manager's
is) and `async def` callbacks (each behind its own channel and task).
Rates are events per CPU second of this process (threads included, so the fsyncs' CPU counts;
time spent waiting for the disk does not), because the box is shared and wall time swings with
other load; wall-clock rates are printed beside them.
Target: the agent moves >= 0.5x the bare pipeline's events per second.

Run: .venv/bin/python bench/bench_fanout.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import report
from hub.agent import AsyncAgent
from hub.events import AgentEnd, AgentEvent, ReadGap, ReadItem
from hub.fanout import Callback
from hub.model import ModelPart, ModelTurn, TextDelta
from hub.sessions import SessionStore

RUNS = 5
DELTAS_PER_RUN = 8000
REPEATS = 3


class StreamingModel:
    """Streams `deltas` one-character pieces per turn, yielding to the loop after each."""

    def __init__(self, deltas: int) -> None:
        self.deltas = deltas

    @property
    def name(self) -> str:
        return "bench"

    async def stream(self, turn: ModelTurn) -> AsyncGenerator[ModelPart, None]:
        for n in range(self.deltas):
            yield TextDelta("abcdefghij"[n % 5 * 2 : n % 5 * 2 + 2])
            await asyncio.sleep(0)


class Counter:
    """A subscriber counting events; `done` is set after the last run's agent_end."""

    def __init__(self) -> None:
        self.count = 0
        self.ends = 0
        self.done = asyncio.Event()

    def __call__(self, event: AgentEvent) -> None:
        self.count += 1
        if isinstance(event, AgentEnd):
            self.ends += 1
            if self.ends == RUNS:
                self.done.set()


class AsyncCounter(Counter):
    async def __call__(self, event: AgentEvent) -> None:  # type: ignore[override]
        super().__call__(event)


class Timing(NamedTuple):
    cpu: float
    wall: float


def clock() -> Timing:
    return Timing(time.process_time(), time.perf_counter())


def since(start: Timing) -> Timing:
    now = clock()
    return Timing(now.cpu - start.cpu, now.wall - start.wall)


async def through_agent(
    data_dir: Path, counter: type[Counter], keep: list[ReadItem] | None = None
) -> tuple[Timing, int]:
    """Time for RUNS turns to reach all three consumers, and how many items read() got
    (kept in `keep` when given)."""
    agent = AsyncAgent("bench", StreamingModel(DELTAS_PER_RUN), SessionStore(data_dir))
    subscribers = [counter(), counter()]
    for subscriber in subscribers:
        agent.subscribe(subscriber)
    count = 0

    async def reader() -> None:
        nonlocal count
        ends = 0
        async for item in agent.read():
            count += 1
            if keep is not None:
                keep.append(item)
            if isinstance(item, AgentEnd):
                ends += 1
                if ends == RUNS:
                    return

    start = clock()
    reading = asyncio.ensure_future(reader())
    for n in range(RUNS):
        agent.write(f"turn {n}")
    await asyncio.gather(reading, *(subscriber.done.wait() for subscriber in subscribers))
    elapsed = since(start)
    assert [s.count for s in subscribers] == [count] * 2
    await agent.close()
    return elapsed, count


async def through_queues(items: list[ReadItem], counter: type[Counter]) -> Timing:
    """Time for the same objects to reach three consumers through one queue each: one counts
    (the reader), two hand each item to the same kind of callback the agent's subscribers are,
    so both sides do the same consumer work and differ only in transport."""
    queues: list[asyncio.Queue[ReadItem | None]] = [asyncio.Queue() for _ in range(3)]
    read = 0
    counters = [counter(), counter()]

    async def reader() -> None:
        nonlocal read
        while (await queues[0].get()) is not None:
            read += 1

    async def deliver(queue: asyncio.Queue[ReadItem | None], callback: Callback) -> None:
        while (item := await queue.get()) is not None:
            assert not isinstance(item, ReadGap)
            result = callback(item)
            if result is not None:
                await result

    start = clock()
    consumers = [
        asyncio.ensure_future(reader()),
        *(asyncio.ensure_future(deliver(q, c)) for q, c in zip(queues[1:], counters, strict=True)),
    ]
    for item in items:
        for queue in queues:
            queue.put_nowait(item)
        await asyncio.sleep(0)
    for queue in queues:
        queue.put_nowait(None)
    await asyncio.gather(*consumers)
    elapsed = since(start)
    assert [read, *(c.count for c in counters)] == [len(items)] * 3
    return elapsed


def fastest(a: Timing, b: Timing) -> Timing:
    return Timing(min(a.cpu, b.cpu), min(a.wall, b.wall))


async def main() -> bool:
    slow = Timing(float("inf"), float("inf"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        items: list[ReadItem] = []
        await through_agent(root / "capture", Counter, keep=items)
        best = {Counter: slow, AsyncCounter: slow}
        bare = {Counter: slow, AsyncCounter: slow}
        for repeat in range(REPEATS):
            for kind in best:
                elapsed, count = await through_agent(root / f"{kind.__name__}{repeat}", kind)
                assert count == len(items)
                best[kind] = fastest(best[kind], elapsed)
                bare[kind] = fastest(bare[kind], await through_queues(items, kind))
    n = len(items)
    print(
        f"fan-out: {n:,} events per pass ({RUNS} runs x {DELTAS_PER_RUN} two-char deltas), "
        f"measured through the real run path (model -> events -> fsynced entries -> "
        f"1 read() + 2 subscribers); best of {REPEATS}"
    )
    ok = True
    for kind, label in ((Counter, "plain"), (AsyncCounter, "async def")):
        print(
            f"  {label} subscribers, wall clock: agenthub {n / best[kind].wall:,.0f}/s vs bare "
            f"{n / bare[kind].wall:,.0f}/s ({bare[kind].wall / best[kind].wall:.2f}x)"
        )
        ok &= report(
            f"fan-out events per CPU second, {label} subscribers",
            baseline=n / bare[kind].cpu,
            candidate=n / best[kind].cpu,
            unit="events/s",
            target=0.5,
        )
    return ok


if __name__ == "__main__":
    sys.exit(0 if asyncio.run(main()) else 1)
