"""Server memory per idle connection: the gateway (authenticated client devices, presence,
rate-limit buckets, rooms) against a bare python-socketio server, each in its own process,
measured as the growth of its resident set while idle clients connect.
Target: <= 1.1x the bare server's bytes per connection.

Run: .venv/bin/python bench/bench_gateway_memory.py
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import socketio

from bench.bench_gateway import Kind, client_auth, connect, server
from bench.common import report

WARM_UP = 50
CONNECTIONS = 500
BATCH = 50


async def bytes_per_connection(kind: Kind) -> float:
    async with server(kind, WARM_UP + CONNECTIONS) as srv:
        clients: list[socketio.AsyncClient] = []

        async def connect_range(devices: list[tuple[str, str]]) -> None:
            for start in range(0, len(devices), BATCH):
                clients.extend(
                    await asyncio.gather(
                        *(
                            connect(srv.url, client_auth(kind, d))
                            for d in devices[start : start + BATCH]
                        )
                    )
                )

        # A first batch warms the allocator and the server's lazily built structures.
        await connect_range(srv.ready.devices[:WARM_UP])
        await asyncio.sleep(1.0)
        before = srv.rss_bytes()
        await connect_range(srv.ready.devices[WARM_UP:])
        await asyncio.sleep(2.0)
        after = srv.rss_bytes()
        await asyncio.gather(*(c.disconnect() for c in clients))
        return (after - before) / CONNECTIONS


async def main() -> None:
    bare = await bytes_per_connection("bare")
    ours = await bytes_per_connection("gateway")
    report(
        f"server memory per idle connection ({CONNECTIONS} connections)",
        baseline=bare / 1024,
        candidate=ours / 1024,
        unit="KiB",
        target=1.1,
        higher_is_better=False,
    )


if __name__ == "__main__":
    asyncio.run(main())
