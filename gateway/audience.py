"""Who receives a hub's `*` stream frames: every client device except the guests.

A hub declares its guest devices (`guests` event, on every link, before any stream frame);
the declaration is kept in presence, so every gateway node seats a client socket by it: an
owner's device in `CLIENTS_ROOM` (where `*` frames go), a guest's in `GUESTS_ROOM` (notices
only; the hub addresses a guest's own sessions' stream frames to the guest device itself).
A declaration moves the sockets already connected; seating checks again after entering a
room, so a declaration made meanwhile (on any node) is never missed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from pydantic import ValidationError

from gateway.connections import ConnectionTable
from gateway.presence import Presence
from gateway.protocol import GuestDevices
from hub.errors import describe_validation

log = logging.getLogger("agenthub.gateway")

CLIENTS_ROOM = "clients"
GUESTS_ROOM = "guests"

# (sid, room): enter or leave a room; python-socketio reaches other nodes' sockets too.
RoomChange = Callable[[str, str], Awaitable[None]]


class Audience:
    def __init__(
        self, table: ConnectionTable, presence: Presence, enter: RoomChange, leave: RoomChange
    ) -> None:
        self.table = table
        self.presence = presence
        self._enter = enter
        self._leave = leave

    async def seat(self, sid: str, device_id: str) -> None:
        """Put a client socket in the room its device belongs in."""
        if await self.presence.is_guest(device_id):
            await self._enter(sid, GUESTS_ROOM)
            return
        await self._enter(sid, CLIENTS_ROOM)
        if await self.presence.is_guest(device_id):  # declared while this socket was seated
            await self._move(sid, guest=True)

    async def on_guests(self, sid: str, data: object = None) -> dict[str, object]:
        """The `guests` event of a hub: its guest devices, replacing what it declared before."""
        conn = self.table.get(sid)
        if conn is None or conn.role != "hub":
            return {"ok": False, "error": "only a hub declares guests"}
        try:
            declared = GuestDevices.model_validate(data)
        except ValidationError as exc:
            return {"ok": False, "error": describe_validation(exc, limit=1)}
        before = await self.presence.guests()
        await self.presence.declare_guests(conn.device_id, frozenset(declared.devices))
        after = await self.presence.guests()
        for device_id in sorted(before ^ after):
            for device_sid in await self.presence.sids(device_id):
                await self._move(device_sid, guest=device_id in after)
        log.info("hub %s declared %d guest devices", conn.device_id, len(declared.devices))
        return {"ok": True}

    async def _move(self, sid: str, *, guest: bool) -> None:
        await self._leave(sid, CLIENTS_ROOM if guest else GUESTS_ROOM)
        await self._enter(sid, GUESTS_ROOM if guest else CLIENTS_ROOM)
