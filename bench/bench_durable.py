"""What durability costs, side by side with a bare hub.

1. Turn throughput with the usage meter (usage.jsonl, fsynced per run) and the run journal
   (runs.jsonl, a write per run start/tool/end) subscribed, against the same hub without
   them: echo turns in one session, back to back. Target: >= 0.75x the bare rate.
2. Start-up with interrupted runs: a hub on a data directory where a crash left N sessions
   each with an open run, started with recovery closing them all (a note and a run entry per
   run, each fsynced), against the bare cost of those writes: the same hub start plus the two
   fsynced appends per session done directly. Target: <= 2.5x.

Medians of REPEATS runs, interleaved (the box is shared): throughput in process CPU time,
start-up in wall-clock time (it is mostly waiting for fsync).

Run: .venv/bin/python bench/bench_durable.py
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import report
from hub.echo import EchoModel
from hub.hub import Hub
from hub.origin import Origin
from hub.recovery_service import Recovery
from hub.sessions import MessageEntry, RunEntry, SessionStore, new_entry_id
from hub.usage import PriceTable
from hub.usage_meter import UsageMeter

TURNS = 200
SESSIONS = 100
REPEATS = 7


async def turns(durable: bool) -> float:
    """Turns per CPU second of this process (threads included: the fsyncs run in threads)."""
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder)
        hub = Hub(data_dir, lambda: EchoModel(delay=0))
        meter = UsageMeter(hub, data_dir / "usage.jsonl", PriceTable())
        recovery = Recovery(hub, data_dir / "runs.jsonl")
        if durable:
            await meter.start()
            await recovery.closing.start()
        agent = hub.default_agent
        began = time.process_time()
        for index in range(TURNS):
            hub.submit("main", f"turn {index} with a few words", Origin(surface="desktop"))
            await agent.wait_idle()
        elapsed = time.process_time() - began
        if durable:
            await meter.stop()
            await recovery.closing.stop()
        await hub.close()
        return TURNS / elapsed


async def crashed_data_dir(data_dir: Path, *, interrupted: bool) -> None:
    store = SessionStore(data_dir)
    lines = []
    for index in range(SESSIONS):
        key = f"peer:{index}"
        session = store.create("main", session_key=key)
        run_id = f"r-{index:06d}"
        message = MessageEntry(id=new_entry_id("m"), run_id=run_id, seq=1, role="user", text="hi")
        await session.append(message)
        if interrupted:
            origin = {"surface": "channel", "source": "user"}
            lines.append(
                json.dumps(
                    {
                        "op": "start",
                        "runId": run_id,
                        "agentId": "main",
                        "sessionKey": key,
                        "origin": origin,
                    }
                )
            )
        else:
            await session.append(
                RunEntry(id=new_entry_id("r"), run_id=run_id, seq=2, status="completed")
            )
    (data_dir / "runs.jsonl").write_text("".join(line + "\n" for line in lines))


async def start_up(recover: bool) -> float:
    """Seconds from nothing to a hub whose interrupted runs are closed: by recovery, or (the
    baseline) by appending the same two entries per session directly."""
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder)
        await crashed_data_dir(data_dir, interrupted=True)
        began = time.perf_counter()
        hub = Hub(data_dir, EchoModel)
        if recover:
            recovery = Recovery(hub, data_dir / "runs.jsonl")
            recovery.config = recovery.config.model_copy(update={"rerun": "never"})
            await recovery.closing.start()
            assert len(recovery.closed) == SESSIONS
            await recovery.closing.stop()
        else:
            agent = hub.default_agent
            for index in range(SESSIONS):
                session = agent.sessions.current(f"peer:{index}")
                run_id = f"r-{index:06d}"
                await session.append(
                    MessageEntry(
                        id=new_entry_id("m"),
                        run_id=run_id,
                        seq=3,
                        role="assistant",
                        text="note",
                        aborted=True,
                    )
                )
                await session.append(
                    RunEntry(id=new_entry_id("r"), run_id=run_id, seq=4, status="interrupted")
                )
        elapsed = time.perf_counter() - began
        await hub.close()
        return elapsed


async def main() -> int:
    logging.disable(logging.WARNING)  # recovery logs each closed run
    bare, durable, clean, crashed = [], [], [], []
    for _ in range(REPEATS):
        bare.append(await turns(False))
        durable.append(await turns(True))
        clean.append(await start_up(False))
        crashed.append(await start_up(True))
    ok = report(
        f"turns/s with usage meter + run journal ({TURNS} echo turns)",
        baseline=statistics.median(bare),
        candidate=statistics.median(durable),
        unit="turns/s",
        target=0.75,
    )
    ok &= report(
        f"start-up closing {SESSIONS} interrupted runs",
        baseline=statistics.median(clean) * 1000,
        candidate=statistics.median(crashed) * 1000,
        unit="ms",
        target=2.5,
        higher_is_better=False,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
