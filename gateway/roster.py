"""Roster: the gateway's books on who is connected, kept as sockets come and go.

- Connect: the admission decides; a socket without credentials goes to the pairing desk; a
  device enters this node's table, its device room, presence, and the hubs' room or its seat
  in the audience (`gateway.audience`), then hears `registered`.
- Disconnect: the socket leaves the pairing desk, the table and presence.
- `devices` pushes, debounced (a burst of connects costs one): hubs hear every device,
  clients only which hubs are online.
- Revocation: every socket of a revoked device, on any node, is disconnected at once.
"""

from __future__ import annotations

import asyncio
import logging

import socketio
from aiohttp import web

from gateway.admission import Admission, refuse
from gateway.audience import CLIENTS_ROOM, GUESTS_ROOM, Audience
from gateway.config import GatewayConfig
from gateway.connections import ConnectionTable
from gateway.pairing import PairingDesk
from gateway.presence import Presence
from gateway.protocol import Devices, Registered, Role
from gateway.relay import HUBS_ROOM, device_room
from hub.access import Decision, DeviceRecord
from hub.tasks import TaskFunnel

log = logging.getLogger("agenthub.gateway")

DEVICES_PUSH_DELAY = 0.1


class Roster:
    """`on_connect` / `on_disconnect` for every socket of this node, `on_access` for the
    access store's changes. Pushes go out only while `open` (the node is listening)."""

    def __init__(
        self,
        config: GatewayConfig,
        sio: socketio.AsyncServer,
        node_id: str,
        table: ConnectionTable,
        presence: Presence,
        admission: Admission,
        pairing: PairingDesk,
        audience: Audience,
        tasks: TaskFunnel,
    ) -> None:
        self.config = config
        self.sio = sio
        self.node_id = node_id
        self.table = table
        self.presence = presence
        self.admission = admission
        self.pairing = pairing
        self.audience = audience
        self.open = False
        self._tasks = tasks
        self._devices_push: asyncio.TimerHandle | None = None

    def close(self) -> None:
        """No more pushes (the node is going away)."""
        self.open = False
        if self._devices_push is not None:
            self._devices_push.cancel()
            self._devices_push = None

    # -- connect / disconnect ---------------------------------------------------------------

    async def on_connect(self, sid: str, environ: dict[str, object], auth: object) -> None:
        admitted = await self.admission.decide(auth)
        if admitted is None:
            self.pairing.admit(sid, _peer_address(environ))
            self._after_connect(sid, Registered(device_id=None, role="pairing", node=self.node_id))
            return
        await self._register(sid, admitted.device_id, admitted.role, admitted.label)

    async def _register(self, sid: str, device_id: str, role: Role, label: str) -> None:
        self.table.add(sid, device_id, role, label)
        await self.sio.enter_room(sid, device_room(device_id))
        try:
            await self.presence.add(device_id, role, label, sid)
            if role == "hub":
                await self.sio.enter_room(sid, HUBS_ROOM)
            else:
                await self.audience.seat(sid, device_id)
        except Exception:
            self.table.forget(sid)
            log.exception("presence store failed; refusing %s", device_id)
            refuse("UNAVAILABLE", "the gateway cannot record presence right now")
        log.info("%s %s connected (node %s)", role, device_id, self.node_id)
        hubs = [d.device_id for d in await self.presence.devices() if d.role == "hub"]
        registered = Registered(
            device_id=device_id,
            role=role,
            node=self.node_id,
            hubs=hubs,
            max_frame_bytes=self.config.max_frame_bytes,
        )
        self._after_connect(sid, registered)
        self._schedule_devices_push()

    def _after_connect(self, sid: str, registered: Registered) -> None:
        # Runs once the handler returned and the CONNECT packet is queued ahead of it.
        self._tasks.spawn(self.sio.emit("registered", registered.model_dump(), to=sid))

    async def on_disconnect(self, sid: str, reason: object = None) -> None:
        self.pairing.leave(sid)
        conn = self.table.forget(sid)
        if conn is None:
            return
        log.info("%s %s disconnected (%s)", conn.role, conn.device_id, reason)
        try:
            await self.presence.remove(conn.device_id, sid)
        except Exception as exc:
            log.warning("presence store failed removing %s: %s", conn.device_id, exc)
        self._schedule_devices_push()

    # -- presence pushes --------------------------------------------------------------------

    def _schedule_devices_push(self) -> None:
        if self._devices_push is None and self.open:
            self._devices_push = asyncio.get_running_loop().call_later(
                DEVICES_PUSH_DELAY, lambda: self._tasks.spawn(self.push_devices())
            )

    async def push_devices(self) -> None:
        """Tell hubs every connected device, and clients the hubs (never other devices)."""
        self._devices_push = None
        devices = await self.presence.devices()
        await self.sio.emit("devices", Devices(devices=devices).model_dump(), room=HUBS_ROOM)
        hubs = [d for d in devices if d.role == "hub"]
        # Clients need the hubs to address them and to resync when one comes back.
        clients = [CLIENTS_ROOM, GUESTS_ROOM]
        await self.sio.emit("devices", Devices(devices=hubs).model_dump(), room=clients)

    # -- access changes ---------------------------------------------------------------------

    def on_access(self, what: str, payload: Decision | DeviceRecord) -> None:
        if what == "decided" and isinstance(payload, Decision):
            self.pairing.decided(payload)
        elif what == "revoked" and isinstance(payload, DeviceRecord):
            self._tasks.spawn(self._disconnect_device(payload.device_id))

    async def _disconnect_device(self, device_id: str) -> None:
        sids = self.table.device_sids(device_id)
        try:
            sids.update(await self.presence.sids(device_id))
        except Exception as exc:
            log.warning("presence lookup failed while revoking %s: %s", device_id, exc)
        for sid in sids:
            await self.sio.disconnect(sid)
        log.info("revoked device %s: %d sockets disconnected", device_id, len(sids))


def _peer_address(environ: dict[str, object]) -> str:
    """The socket's remote address (behind a reverse proxy, the proxy's)."""
    request = environ.get("aiohttp.request")
    remote = request.remote if isinstance(request, web.BaseRequest) else None
    return remote or "unknown"
