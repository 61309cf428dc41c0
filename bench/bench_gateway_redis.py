"""Scale-out latency: a request/response round trip client -> hub -> client through gateway
nodes on one redis-server, with the client on the hub's node (same-node) and on another node
(cross-node). Both nodes run on the Redis manager in either case; each node is its own process.
Target: cross-node p50 <= 2x same-node p50.

Run: .venv/bin/python bench/bench_gateway_redis.py   (needs redis-server)
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import socketio
from pydantic import JsonValue

from bench.bench_gateway import Server, client_auth, connect, free_port, hub_auth, server
from bench.common import report

PINGS = 300


async def redis(binary: str) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *(binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
        cwd=tempfile.mkdtemp(prefix="bench-redis-"),
        stdout=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(0.5)
    return process, f"redis://127.0.0.1:{port}/0"


async def round_trips(client_node: Server, hub: socketio.AsyncClient, index: int) -> float:
    """p50 of sequential request -> response round trips, in ms."""
    device = client_node.ready.devices[index]
    answered: asyncio.Queue[float] = asyncio.Queue()

    def on_receive(frame: dict[str, JsonValue]) -> None:
        answered.put_nowait(time.perf_counter())

    client = await connect(client_node.url, client_auth("gateway", device), on_receive)
    await asyncio.sleep(0.5)
    times = []
    for n in range(PINGS):
        sent = time.perf_counter()
        await client.emit(
            "send",
            {
                "id": f"p-{n}",
                "from": device[0],
                "to": "hub",
                "action": "request",
                "payload": {"requestId": f"p-{n}", "method": "ping", "params": {}},
            },
        )
        times.append(await asyncio.wait_for(answered.get(), 10) - sent)
    await client.disconnect()
    return sorted(times)[len(times) // 2] * 1000


async def main() -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis-server is not installed; `make setup-system` installs it")
        return
    process, url = await redis(binary)
    try:
        async with server("gateway", 4, url) as node_a, server("gateway", 4, url) as node_b:
            hub = await connect(node_b.url, hub_auth("gateway"))

            def answer(frame: dict[str, JsonValue]) -> None:
                payload = frame["payload"]
                assert isinstance(payload, dict)
                reply = {
                    "id": f"r-{payload['requestId']}",
                    "from": "hub",
                    "to": frame["from"],
                    "action": "response",
                    "payload": {"requestId": payload["requestId"], "ok": True, "payload": None},
                }
                asyncio.get_running_loop().create_task(hub.emit("send", reply))

            hub.on("receive", answer)
            same, cross = [], []
            for i in range(2):  # alternate, so load on the box hits both alike
                same.append(await round_trips(node_b, hub, i))
                cross.append(await round_trips(node_a, hub, i))
            await hub.disconnect()
    finally:
        process.terminate()
        await process.wait()
    report(
        "request round trip p50 on Redis, cross-node vs same-node",
        baseline=min(same),
        candidate=min(cross),
        unit="ms",
        target=2.0,
        higher_is_better=False,
    )


if __name__ == "__main__":
    asyncio.run(main())
