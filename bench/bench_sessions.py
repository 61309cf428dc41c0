"""Sessions: what many conversations cost, side by side with their bare baselines.

1. Throughput: 1,000 sessions with one short echo turn each vs one session doing the same
   1,000 turns (same agent, same model, same fsyncs per turn). Target >= 0.8x: a session costs
   almost nothing beyond its turns.
2. Memory per idle loaded session (a session of one turn held by the registry), beside the same
   files' lines held as parsed JSON dicts.
3. Reloading one session of 10,000 entries (`load_session`: parse and validate every line)
   vs a bare loop of `json.loads` over the file's lines. Target <= 1.5x.

Run: .venv/bin/python bench/bench_sessions.py
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import report
from hub.agent import AsyncAgent
from hub.echo import EchoModel
from hub.session_registry import SessionRegistry
from hub.sessions import MessageEntry, RunEntry, SessionStore, ToolEntry, load_session

TURNS = 1000
ENTRIES = 10_000
REPEATS = 9


async def turns(data_dir: Path, *, sessions: bool) -> float:
    """Seconds for TURNS echo turns: each in its own session, or all in one."""
    agent = AsyncAgent("main", EchoModel(pieces=2), SessionStore(data_dir), max_queued_turns=TURNS)
    start = time.perf_counter()
    for n in range(TURNS):
        agent.write(f"turn {n}", session_key=f"s{n}" if sessions else "main")
    await agent.wait_idle()
    elapsed = time.perf_counter() - start
    await agent.close()
    return elapsed


def idle_memory(data_dir: Path) -> tuple[float, float]:
    """Bytes per loaded idle session, registry vs the same lines as parsed JSON."""
    store = SessionStore(data_dir)
    paths = sorted(store.agent_dir("main").glob("*.jsonl"))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    bare = [[json.loads(line) for line in path.read_bytes().splitlines()] for path in paths]
    bare_used = tracemalloc.get_traced_memory()[0] - before
    before = tracemalloc.get_traced_memory()[0]
    registry = SessionRegistry(store, "main", loaded=len(paths) + 1)
    for key in registry.session_keys():
        registry.current(key)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert registry.loaded_count == len(bare) == len(paths)
    return used / len(paths), bare_used / len(paths)


async def big_session(data_dir: Path) -> Path:
    session = SessionStore(data_dir).create("main", session_key="big")
    lines = []
    for n in range(ENTRIES):
        if n % 10 == 9:
            entry: MessageEntry | ToolEntry | RunEntry = RunEntry(
                id=f"r-{n}", run_id=f"r-{n}", seq=n, status="completed"
            )
        elif n % 10 == 5:
            entry = ToolEntry(
                id=f"t-{n}",
                run_id=f"r-{n}",
                seq=n,
                tool_call_id="c",
                tool_name="calc",
                args={"expr": "6*7"},
                result=42,
                is_error=False,
            )
        else:
            role = "user" if n % 2 else "assistant"
            entry = MessageEntry(
                id=f"m-{n}", run_id=f"r-{n}", seq=n, role=role, text=f"message {n} " * 8
            )
        lines.append(entry.model_dump_json(by_alias=True))
    with session.path.open("a") as handle:
        handle.write("\n".join(lines) + "\n")
    return session.path


def reload_times(path: Path) -> tuple[float, float]:
    """Median CPU seconds to load the session, and to json.loads its lines (interleaved; CPU
    time, because the box is shared and wall time swings with other load)."""
    ours: list[float] = []
    bare: list[float] = []
    for _ in range(REPEATS):
        start = time.process_time()
        loaded = load_session(path)
        ours.append(time.process_time() - start)
        assert len(loaded.entries) == ENTRIES
        start = time.process_time()
        with path.open("rb") as handle:
            parsed = [json.loads(line) for line in handle]
        bare.append(time.process_time() - start)
        assert len(parsed) == ENTRIES + 1
    return sorted(ours)[REPEATS // 2], sorted(bare)[REPEATS // 2]


async def main() -> int:
    # Nobody reads the agents' read() channel here: its overflow warnings are expected.
    logging.getLogger("agenthub").setLevel(logging.ERROR)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # Interleaved, so load on the shared box hits both sides alike.
        one: list[float] = []
        many: list[float] = []
        for n in range(3):
            one.append(await turns(root / f"one-{n}", sessions=False))
            many.append(await turns(root / f"many-{n}", sessions=True))
        one_rate, many_rate = TURNS / min(one), TURNS / min(many)
        ok &= report(
            f"{TURNS} sessions x 1 turn vs 1 session x {TURNS} turns",
            baseline=one_rate,
            candidate=many_rate,
            unit="turns/s",
            target=0.8,
        )
        ours, bare = idle_memory(root / "many-0")
        print(
            f"memory per idle loaded session (one turn, 5 entries): {ours / 1024:,.1f} KiB"
            f" vs the lines as JSON dicts {bare / 1024:,.1f} KiB -> ratio {ours / bare:.2f}"
        )
        path = await big_session(root / "big")
        load, loop = reload_times(path)
        ok &= report(
            f"reload of a {ENTRIES:,}-entry session vs a bare JSON-lines loop",
            baseline=loop * 1000,
            candidate=load * 1000,
            unit="ms",
            target=1.5,
            higher_is_better=False,
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
