"""A socket that goes away while its connect handler is still running: python-socketio skips
the disconnect handler of a connection still pending, so without care its sid would stay in
the gateway's books (table and presence) for good."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from gateway.protocol import Role
from gateway.server import GatewayServer
from tests.test_gateway_support import WAIT_SECONDS, eventually, running_stack


class HeldPresence:
    """Holds every `presence.add` (the connect handler's last await) until released."""

    def __init__(self, gateway: GatewayServer) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self._add = gateway.presence.add
        gateway.presence.add = self.add  # type: ignore[method-assign]

    async def add(self, device_id: str, role: Role, label: str, sid: str) -> None:
        self.entered.set()
        await self.release.wait()
        await self._add(device_id, role, label, sid)


@asynccontextmanager
async def connecting(
    url: str, auth: dict[str, str]
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A raw websocket that has sent its namespace CONNECT (and answers no ping from here on)."""
    ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url) as ws:
        assert (await ws.receive_str()).startswith("0")
        await ws.send_str("40" + json.dumps(auth))
        yield ws


@pytest.mark.parametrize("closer", ["client", "ping timeout"])
async def test_a_socket_gone_while_its_connect_is_pending_leaves_no_trace(
    data_dir: Path, closer: str
) -> None:
    # Short pings (in whole seconds: that is how Engine.IO tells them to clients).
    async with running_stack(data_dir, ping_interval=1.0, ping_timeout=1.0) as stack:
        gateway = stack.gateway
        issued = stack.hub.access.redeem_invite(stack.hub.access.create_invite().code, "late")
        auth = {"role": "client", "deviceId": issued.device_id, "token": issued.token}
        await eventually(lambda: len(gateway.table) == 1)  # the hub
        held = HeldPresence(gateway)
        async with connecting(stack.url, auth) as ws:
            await held.entered.wait()
            eio_sid = list(gateway.sio.eio.sockets)[-1]  # the newest
            socket = gateway.sio.eio.sockets[eio_sid]
            if closer == "client":
                await ws.close()
            # ping timeout: no pong can be read while the handler holds the socket's reader
            await eventually(lambda: socket.closed or closer != "ping timeout")
            held.release.set()
            await eventually(lambda: socket.closed)
        await eventually(lambda: not gateway.table.device_sids(issued.device_id))
        assert stack.link.linked and gateway.table.hubs() == 1
        assert issued.device_id not in {d.device_id for d in await gateway.connected_devices()}
        assert gateway.sio.manager.sid_from_eio_sid(eio_sid, "/") is None


async def test_a_device_revoked_while_its_connect_is_pending_is_disconnected(
    data_dir: Path,
) -> None:
    async with running_stack(data_dir) as stack:
        gateway = stack.gateway
        issued = stack.hub.access.redeem_invite(stack.hub.access.create_invite().code, "late")
        auth = {"role": "client", "deviceId": issued.device_id, "token": issued.token}
        held = HeldPresence(gateway)
        async with connecting(stack.url, auth) as ws:
            await held.entered.wait()
            assert stack.hub.access.revoke(issued.device_id)
            held.release.set()
            packets: list[str] = []
            async with asyncio.timeout(WAIT_SECONDS):
                while not packets or packets[-1] != "41":  # the namespace DISCONNECT
                    message = await ws.receive()
                    assert message.type == aiohttp.WSMsgType.TEXT, packets
                    if message.data == "2":
                        await ws.send_str("3")
                    packets.append(str(message.data)[:2])
        assert packets[0] == "40"
        await eventually(lambda: not gateway.table.device_sids(issued.device_id))
        assert issued.device_id not in {d.device_id for d in await gateway.connected_devices()}
