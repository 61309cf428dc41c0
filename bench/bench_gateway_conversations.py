"""Concurrent streaming conversations through one gateway process.

A conversation streams 50 tokens/s; the hub link coalesces message_update frames per 40 ms
window, so each conversation is 25 stream frames/s hub -> gateway -> its client. Hubs are
simulated by a few hub connections (one real hub serves one owner; the relay work is the same);
each conversation's client is its own socket. The number of conversations doubles until the
p99 added latency (send -> receipt) passes 100 ms; the largest count that stayed under it is
the figure, for the gateway and for a bare python-socketio relay on the same frames.
Target (the issue's): >= 2,000 conversations.

Run: .venv/bin/python bench/bench_gateway_conversations.py
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import socketio
from pydantic import JsonValue

from bench.bench_gateway import (
    Kind,
    client_auth,
    connect,
    hub_auth,
    percentile,
    sent_at,
    server,
    stream_frame,
)
from bench.common import report

FRAMES_PER_SECOND = 25
STEPS = (20, 40, 60, 80, 100, 140, 200, 300, 450, 640)
HUBS = 4
SECONDS = 2.5
LIMIT_MS = 100.0


async def step(
    hubs: list[socketio.AsyncClient], targets: list[str], latencies: list[float]
) -> float:
    """Run len(targets) conversations for SECONDS; p99 added latency in ms."""
    latencies.clear()
    start = time.perf_counter() + 0.2
    frames = int(SECONDS * FRAMES_PER_SECOND)
    text = ""

    async def conversation(index: int, target: str) -> None:
        nonlocal text
        hub = hubs[index % len(hubs)]
        offset = index / len(targets) / FRAMES_PER_SECOND  # spread conversations over a tick
        for n in range(frames):
            delay = start + offset + n / FRAMES_PER_SECOND - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            words = "token " * (2 * (n + 1))
            await hub.emit("send", stream_frame(n, f"hub-{index % len(hubs)}", target, words))

    await asyncio.gather(*(conversation(i, t) for i, t in enumerate(targets)))
    expected = frames * len(targets)
    deadline = time.perf_counter() + 3.0
    # Stragglers arrive on client callbacks; poll for them for a while.
    while len(latencies) < expected and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    if len(latencies) < expected:
        return float("inf")  # frames lost or stuck for seconds: over the limit
    return percentile(latencies, 99) * 1000


async def capacity(kind: Kind) -> tuple[int, dict[int, tuple[float, float]]]:
    latencies: list[float] = []

    def on_receive(frame: dict[str, JsonValue]) -> None:
        latencies.append(time.perf_counter() - sent_at(frame))

    seen: dict[int, tuple[float, float]] = {}
    best = 0
    async with server(kind, max(STEPS)) as srv:
        hubs = [await connect(srv.url, hub_auth(kind, f"hub-{i}")) for i in range(HUBS)]
        clients: list[socketio.AsyncClient] = []
        for count in STEPS:
            wanted = srv.ready.devices[len(clients) : count]
            for batch in range(0, len(wanted), 50):
                clients += await asyncio.gather(
                    *(
                        connect(srv.url, client_auth(kind, d), on_receive)
                        for d in wanted[batch : batch + 50]
                    )
                )
            cpu = srv.cpu_seconds()
            p99 = await step(hubs, [d[0] for d in srv.ready.devices[:count]], latencies)
            frames = count * int(SECONDS * FRAMES_PER_SECOND)
            seen[count] = (p99, (srv.cpu_seconds() - cpu) / frames * 1e6)
            if p99 > LIMIT_MS:
                break
            best = count
        await asyncio.gather(*(c.disconnect() for c in [*clients, *hubs]))
    return best, seen


async def main() -> None:
    bare, bare_seen = await capacity("bare")
    ours, our_seen = await capacity("gateway")
    for kind, seen in (("baseline", bare_seen), ("agenthub", our_seen)):
        steps = ", ".join(
            f"{n}: {p:.0f} ms ({cpu:.0f} us CPU/frame)" for n, (p, cpu) in seen.items()
        )
        print(f"{kind} p99 added latency by conversations: {steps}")
    report(
        f"conversations at 50 tokens/s ({FRAMES_PER_SECOND} frames/s) with p99 < 100 ms",
        baseline=float(bare),
        candidate=float(ours),
        unit="conversations",
        target=0.8,
    )
    print(
        f"absolute target >= 2,000 conversations: agenthub {ours}"
        f" {'OK' if ours >= 2000 else 'MISSED'} (2 cores, load generator on the same box)"
    )


if __name__ == "__main__":
    asyncio.run(main())
