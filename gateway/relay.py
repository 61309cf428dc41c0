"""The frame relay: checks each `send` frame and delivers it as `receive` to every socket of
its target, or answers the sender with `send_error`.

Checks run in this order: registered, rate, size, shape, `from`, action, target. A stream
frame for `*` goes to the room of every client device but the guests (`gateway.audience`;
pairing sockets are never in it).
`on_send` returns normally whatever the outcome, so a sender that asked for an ack gets one
once the frame was handled; a stream frame's ack waits until the frame is in every
recipient's queue (the fan-out goes a slice of sockets per loop turn), without holding up
the hub's next frames: the hub paces its stream frames by these acks, and its answers
overtake them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError, to_json

from gateway.audience import CLIENTS_ROOM
from gateway.config import GatewayConfig
from gateway.connections import ConnectionTable
from gateway.presence import LocalPresence, Presence
from gateway.protocol import (
    ALL_CLIENTS,
    ALLOWED_ACTIONS,
    FRAME_ADAPTER,
    DeviceInfo,
    ErrorCode,
    Frame,
    SendError,
)
from hub.errors import describe_validation

# (event, data, room) for a room emit; (event, data, sid) for one socket.
Deliver = Callable[[str, object, str], Awaitable[None]]

HUBS_ROOM = "hubs"


class FrameRefused(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message


def device_room(device_id: str) -> str:
    return f"d:{device_id}"


def parse_frame(data: object) -> Frame:
    """The frame in `data`, or FrameRefused(INVALID_MESSAGE) naming the first problem."""
    try:
        return FRAME_ADAPTER.validate_python(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] == "union_tag_invalid":
            reason = "unknown action (expected message, stream, request or response)"
        elif first["type"] == "union_tag_not_found":
            reason = "missing action (expected message, stream, request or response)"
        elif first["type"] in ("model_type", "model_attributes_type") and not first["loc"]:
            reason = "a frame must be a JSON object"
        else:
            reason = describe_validation(exc, limit=1)
        raise FrameRefused("INVALID_MESSAGE", reason) from None


def is_stream(event: str, data: object) -> bool:
    """Stream frames take the back lane: answers, errors and notices overtake them."""
    return event == "receive" and isinstance(data, dict) and data.get("action") == "stream"


def frame_id(data: object) -> str | None:
    if isinstance(data, dict):
        value = data.get("id")
        if isinstance(value, str) and len(value) <= 128:
            return value
    return None


class Relay:
    """`on_send(sid, data)` for every `send` frame of this node's sockets."""

    def __init__(
        self,
        config: GatewayConfig,
        table: ConnectionTable,
        presence: Presence,
        to_room: Deliver,
        to_sid: Deliver,
        delivered: Callable[[], asyncio.Future[None]],
    ) -> None:
        self.config = config
        self.table = table
        self.presence = presence
        self._to_room = to_room
        self._to_sid = to_sid
        self._delivered = delivered

    async def on_send(self, sid: str, data: object = None) -> asyncio.Future[None] | None:
        """Relay one frame. For a stream frame, the future its acknowledgement waits for: the
        frame is in every recipient's queue (the hub paces its streams by these)."""
        try:
            frame = await self._check(sid, data)
        except FrameRefused as exc:
            error = SendError(message_id=frame_id(data), code=exc.code, message=exc.message)
            await self._to_sid("send_error", error.model_dump(), sid)
            return None
        # `*` (stream frames, which only hubs may send): every owner's device, in one emit.
        room = CLIENTS_ROOM if frame.to == ALL_CLIENTS else device_room(frame.to)
        await self._to_room("receive", data, room)
        return self._delivered() if frame.action == "stream" else None

    async def _check(self, sid: str, data: object) -> Frame:
        conn = self.table.get(sid)
        if conn is None:
            raise FrameRefused("NOT_REGISTERED", "pair this device first")
        if not self.table.take(conn.device_id):
            raise FrameRefused("RATE_LIMITED", "too many frames; slow down and resend")
        try:
            size = len(to_json(data))
        except PydanticSerializationError:
            # A binary attachment that is not UTF-8 text: frames are JSON text only.
            raise FrameRefused(
                "INVALID_MESSAGE", "a frame is JSON text; binary data cannot be relayed"
            ) from None
        if size > self.config.max_frame_bytes:
            raise FrameRefused(
                "TOO_LARGE", f"frame is larger than {self.config.max_frame_bytes} bytes"
            )
        frame = parse_frame(data)
        if frame.sender != conn.device_id:
            raise FrameRefused("UNAUTHORIZED", "`from` must be this socket's device id")
        if frame.action not in ALLOWED_ACTIONS[conn.role]:
            raise FrameRefused("UNAUTHORIZED", f"a {conn.role} may not send {frame.action}")
        if frame.to == ALL_CLIENTS:
            return frame
        target = await self._lookup(frame.to)
        if target is None:
            raise FrameRefused("DEVICE_NOT_FOUND", f"device {frame.to} is not connected")
        if conn.role == "client" and target.role != "hub":
            raise FrameRefused("UNAUTHORIZED", "client devices may only address a hub")
        return frame

    async def _lookup(self, device_id: str) -> DeviceInfo | None:
        local = self.table.lookup(device_id)
        if local is not None or isinstance(self.presence, LocalPresence):
            return local
        return await self.presence.lookup(device_id)
