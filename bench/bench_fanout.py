"""Fan-out: events through AsyncAgent to one read() consumer plus two subscribers, against a bare
pipeline of one asyncio.Queue per consumer (three consumers) moving the same event objects.

The agent side is the real run path: a model streams many two-character TextDeltas (yielding to
the event loop after each, as a network stream does); the agent builds every event (updates
carry the full text so far, up to 4,000 characters), persists each turn's entries (fsync) and
fans the events out. The consumers count what they get and keep nothing, as a real surface
forwards and forgets. The bare side replays the very event objects an earlier agent pass
produced through three queues, yielding to the loop after each event too.
Two subscriber kinds are measured: plain callbacks (called inline, as the channel manager's
is) and `async def` callbacks (each behind its own channel and task).
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import report
from hub.agent import AsyncAgent
from hub.events import AgentEnd, AgentEvent, ReadItem
from hub.model import ModelPart, ModelTurn, TextDelta
from hub.sessions import SessionStore

RUNS = 20
DELTAS_PER_RUN = 2000
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


async def through_agent(
    data_dir: Path, counter: type[Counter], keep: list[ReadItem] | None = None
) -> tuple[float, int]:
    """Seconds for RUNS turns to reach all three consumers, and how many items read() got
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

    start = time.perf_counter()
    reading = asyncio.ensure_future(reader())
    for n in range(RUNS):
        agent.write(f"turn {n}")
    await asyncio.gather(reading, *(subscriber.done.wait() for subscriber in subscribers))
    elapsed = time.perf_counter() - start
    assert [s.count for s in subscribers] == [count] * 2
    await agent.close()
    return elapsed, count


async def through_queues(items: list[ReadItem]) -> float:
    """Seconds for the same objects to reach three consumers through one queue each."""
    queues: list[asyncio.Queue[ReadItem | None]] = [asyncio.Queue() for _ in range(3)]
    received = [0, 0, 0]

    async def consume(index: int) -> None:
        queue = queues[index]
        while (await queue.get()) is not None:
            received[index] += 1

    start = time.perf_counter()
    consumers = [asyncio.ensure_future(consume(i)) for i in range(3)]
    for item in items:
        for queue in queues:
            queue.put_nowait(item)
        await asyncio.sleep(0)
    for queue in queues:
        queue.put_nowait(None)
    await asyncio.gather(*consumers)
    elapsed = time.perf_counter() - start
    assert received == [len(items)] * 3
    return elapsed


async def main() -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        items: list[ReadItem] = []
        await through_agent(root / "capture", Counter, keep=items)
        best = {Counter: float("inf"), AsyncCounter: float("inf")}
        bare = float("inf")
        for repeat in range(REPEATS):
            for kind in best:
                elapsed, count = await through_agent(root / f"{kind.__name__}{repeat}", kind)
                assert count == len(items)
                best[kind] = min(best[kind], elapsed)
            bare = min(bare, await through_queues(items))
    print(
        f"fan-out: {len(items):,} events per pass ({RUNS} runs x {DELTAS_PER_RUN} two-char "
        f"deltas), measured through the real run path (model -> events -> fsynced entries -> "
        f"1 read() + 2 subscribers); best of {REPEATS}"
    )
    ok = report(
        "fan-out events/s, plain subscribers",
        baseline=len(items) / bare,
        candidate=len(items) / best[Counter],
        unit="events/s",
        target=0.5,
    )
    report(
        "fan-out events/s, async subscribers (info)",
        baseline=len(items) / bare,
        candidate=len(items) / best[AsyncCounter],
        unit="events/s",
        target=0.5,
    )
    return ok


if __name__ == "__main__":
    sys.exit(0 if asyncio.run(main()) else 1)
