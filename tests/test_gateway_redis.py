"""Scale-out: two gateway nodes on one real redis-server; a client on node A talks to a hub on
node B, presence is shared, and a hub id stays unique across nodes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import socketio
from pydantic import JsonValue, SecretStr

from gateway.audience import CLIENTS_ROOM, GUESTS_ROOM
from gateway.config import GatewayConfig
from gateway.hub_link import HubLink
from gateway.server import GatewayServer
from hub.echo import EchoModel
from hub.hub import Hub
from tests.conftest import free_port, require_binary
from tests.test_gateway_support import (
    GATEWAY_TOKEN,
    connect_client,
    connect_device,
    eventually,
    is_stream,
    stream_of,
)


@contextlib.asynccontextmanager
async def redis_server(tmp_path: Path) -> AsyncIterator[str]:
    binary = require_binary("redis-server", "gateway scale-out tests")
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *(binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        probe = aioredis.Redis.from_url(url)
        async with asyncio.timeout(10):
            while True:
                try:
                    await probe.ping()
                    break
                except aioredis.ConnectionError:
                    await asyncio.sleep(0.05)
        await probe.aclose()
        yield url
    finally:
        process.terminate()
        async with asyncio.timeout(10):
            await process.wait()


def node(hub: Hub, redis_url: str) -> GatewayServer:
    config = GatewayConfig(port=0, gateway_token=SecretStr(GATEWAY_TOKEN), redis_url=redis_url)
    return GatewayServer(config, hub.access, hub.health)


async def test_a_client_on_node_a_talks_to_a_hub_on_node_b(data_dir: Path, tmp_path: Path) -> None:
    async with redis_server(tmp_path) as url:
        hub = Hub(data_dir, lambda: EchoModel(pieces=4))
        node_a, node_b = node(hub, url), node(hub, url)
        await node_a.start()
        await node_b.start()
        link = HubLink(hub, f"http://127.0.0.1:{node_b.port}", GATEWAY_TOKEN, backoff_max=0.3)
        await link.start()
        try:
            async with asyncio.timeout(10):
                await link.wait_linked()
            client = await connect_client(f"http://127.0.0.1:{node_a.port}", hub)
            registered = await client.registered.get()
            assert registered["hubs"] == ["hub"]  # presence of node B, seen from node A
            await eventually(lambda: client.device_id in link.clients)
            await client.message("across two nodes")
            end = stream_of(await client.next_frame(is_stream("message_end")))
            assert end.event["text"] == "across two nodes"
            history = await client.history()
            assert [e.seq for e in history.entries]
            on_a = {(d.device_id, d.role) for d in await node_a.connected_devices()}
            on_b = {(d.device_id, d.role) for d in await node_b.connected_devices()}
            assert on_a == on_b == {("hub", "hub"), (client.device_id, "client")}
            # A hub id is unique across nodes.
            with pytest.raises(socketio.exceptions.ConnectionError, match="DUPLICATE_DEVICE"):
                await connect_device(
                    f"http://127.0.0.1:{node_a.port}",
                    {"role": "hub", "deviceId": "hub", "token": GATEWAY_TOKEN},
                )
            # Unknown targets are still unknown with Redis.
            await client.send("ghost", "message", {"agentId": "main", "content": "x"})
            assert (await client.next_error()).code == "DEVICE_NOT_FOUND"
            # Node A going away: the hub on node B hears its client is gone.
            await node_a.stop()
            await eventually(lambda: not link.clients)
        finally:
            await link.stop()
            await node_a.stop()
            await node_b.stop()
            await hub.close()


async def test_presence_of_a_stopped_node_is_gone(data_dir: Path, tmp_path: Path) -> None:
    async with redis_server(tmp_path) as url:
        hub = Hub(data_dir, lambda: EchoModel(pieces=2))
        node_a, node_b = node(hub, url), node(hub, url)
        await node_a.start()
        await node_b.start()
        try:
            client = await connect_client(f"http://127.0.0.1:{node_b.port}", hub)
            assert [d.device_id for d in await node_a.connected_devices()] == [client.device_id]
            await node_b.stop()
            assert await node_a.connected_devices() == []
        finally:
            await node_a.stop()
            await node_b.stop()
            await hub.close()


async def test_guests_declared_on_one_node_are_kept_out_of_streams_on_every_node(
    data_dir: Path, tmp_path: Path
) -> None:
    async with redis_server(tmp_path) as url:
        hub = Hub(data_dir, lambda: EchoModel(pieces=4))
        node_a, node_b = node(hub, url), node(hub, url)
        await node_a.start()
        await node_b.start()
        devices = []
        try:
            url_a, url_b = f"http://127.0.0.1:{node_a.port}", f"http://127.0.0.1:{node_b.port}"
            early = await connect_client(url_a, hub, "guest tab")
            devices.append(early)
            assert early.device_id is not None
            guest_id = early.device_id
            [early_sid] = node_a.table.device_sids(guest_id)

            def on_a(room: str) -> set[str]:
                return set(node_a.sio.manager.rooms["/"].get(room, {}))

            assert early_sid in on_a(CLIENTS_ROOM)
            hub_device = await connect_device(
                url_b, {"role": "hub", "deviceId": "hub-b", "token": GATEWAY_TOKEN}
            )
            devices.append(hub_device)
            answer = await hub_device.client.call("guests", {"devices": [guest_id]}, timeout=5)
            assert answer == {"ok": True}
            await eventually(lambda: early_sid in on_a(GUESTS_ROOM))
            assert early_sid not in on_a(CLIENTS_ROOM)
            # A stream frame for every owner's device, sent on node B, passes the guest by.
            owner = await connect_client(url_a, hub, "owner tab")
            devices.append(owner)
            stream: JsonValue = {"agentId": "main", "streamId": "s", "seq": 0, "event": {}}
            await hub_device.send("*", "stream", stream)
            assert stream_of(await owner.next_frame(lambda f: True)).stream_id == "s"
            assert early.received.empty()
        finally:
            for device in devices:
                await device.close()
            await node_a.stop()
            await node_b.stop()
            await hub.close()
