"""The API's client devices: an HTTP API call acts as the device its token belongs to.

An `ApiDevice` is a Socket.IO client of this gateway, connected with the device's own
credentials (`{role: "client", deviceId, token}`), so an API call reaches the hub exactly like
a browser's frames do: through the relay, with the device's authorisation, rate limit and
revocation, and whether the hub runs in this process or another. Requests are `request`
frames answered by `response` frames; a run's events arrive as its `stream` frames.

One connection per device is kept and shared by its concurrent calls (`ApiDevices`); a
revoked device is disconnected by the gateway, and the next call reconnects or is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import socketio
from pydantic import JsonValue, ValidationError

from gateway.protocol import (
    FRAME_ADAPTER,
    Devices,
    Registered,
    RequestPayload,
    ResponseFrame,
    ResponsePayload,
    SendError,
    StreamFrame,
    StreamPayload,
)
from gateway.sio import close_client
from hub.access import AccessStore
from hub.errors import CodedError
from hub.tasks import TaskFunnel

log = logging.getLogger("agenthub.openai_api")

CONNECT_SECONDS = 10.0
# How long a fresh device waits for the presence push that tells the hub it is here (the
# hub sends stream frames to the client devices it knows of).
PRESENCE_SECONDS = 2.0
# Stream frames kept for runs whose id is not known yet (the `response` naming the run may
# arrive after its first frames).
UNCLAIMED_FRAMES = 1024
IDLE_SECONDS = 300.0


def bearer_device(access: AccessStore, authorization: str | None) -> tuple[str, str] | None:
    """The device id and token of an `Authorization: Bearer <device token>` header, or None
    for a missing, unknown or revoked token."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    record = access.device_for_token(token) if scheme == "Bearer" and token else None
    return (record.device_id, token) if record is not None else None


class ApiDeviceError(CodedError):
    """The device's link failed: refused (`UNAUTHORIZED`), no hub (`DEVICE_NOT_FOUND`), rate
    limited (`RATE_LIMITED`), or gone (`unavailable`)."""


class RunStream:
    """The stream frames of one run, in arrival order; `None` ends it (the link dropped)."""

    def __init__(self) -> None:
        self.frames: asyncio.Queue[StreamPayload | None] = asyncio.Queue()

    async def next(self) -> StreamPayload:
        frame = await self.frames.get()
        if frame is None:
            raise ApiDeviceError("the connection to the hub was lost", "unavailable")
        return frame


class ApiDevice:
    """One device's connection to the gateway, shared by that device's API calls."""

    def __init__(self, url: str, device_id: str, token: str) -> None:
        self.url = url
        self.device_id = device_id
        self._token = token
        self._client = socketio.AsyncClient(
            reconnection=False,
            logger=logging.getLogger("socketio.client"),
            engineio_logger=logging.getLogger("engineio.client"),
            handle_sigint=False,
        )
        self._hubs: list[str] = []
        self._registered = asyncio.Event()
        self._presence = asyncio.Event()
        self._answers: dict[str, asyncio.Future[ResponsePayload]] = {}
        self._runs: dict[str, RunStream] = {}
        self._unclaimed: deque[StreamPayload] = deque(maxlen=UNCLAIMED_FRAMES)
        self._prefix = f"{device_id}-api-{secrets.token_hex(3)}"
        self._counter = 0
        self.closed = False
        for event, handler in (
            ("registered", self._on_registered),
            ("devices", self._on_devices),
            ("receive", self._on_receive),
            ("send_error", self._on_send_error),
            ("disconnect", self._on_disconnect),
            ("connect_error", self._on_refused),
        ):
            self._client.on(event, handler)
        self._refusal: str | None = None

    async def connect(self) -> None:
        auth = {"role": "client", "deviceId": self.device_id, "token": self._token}
        try:
            await self._client.connect(
                self.url, auth=auth, transports=["websocket"], wait_timeout=CONNECT_SECONDS
            )
            async with asyncio.timeout(CONNECT_SECONDS):
                await self._registered.wait()
        except (socketio.exceptions.ConnectionError, TimeoutError) as exc:
            self.closed = True
            await close_client(self._client)
            if self._refusal is not None:
                raise ApiDeviceError(self._refusal, "UNAUTHORIZED") from None
            raise ApiDeviceError(f"the gateway did not answer: {exc}", "unavailable") from None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(PRESENCE_SECONDS):
                await self._presence.wait()

    async def close(self) -> None:
        self.closed = True
        with contextlib.suppress(Exception):
            await self._client.disconnect()
        self._fail_all()

    # -- asking -----------------------------------------------------------------------------

    def hub(self) -> str:
        if not self._hubs:
            raise ApiDeviceError("the hub is not connected to the gateway", "DEVICE_NOT_FOUND")
        return self._hubs[0]

    async def request(
        self, method: str, params: dict[str, JsonValue], *, seconds: float
    ) -> JsonValue:
        """The answer payload of `method`, or the hub's refusal as `CodedError`."""
        if self.closed:
            raise ApiDeviceError("the connection to the hub was lost", "unavailable")
        frame_id = self._next_id()
        answer: asyncio.Future[ResponsePayload] = asyncio.get_running_loop().create_future()
        self._answers[frame_id] = answer
        payload = RequestPayload(request_id=frame_id, method=method, params=params)
        try:
            await self._client.emit(
                "send",
                {
                    "id": frame_id,
                    "from": self.device_id,
                    "to": self.hub(),
                    "action": "request",
                    "payload": payload.model_dump(mode="json"),
                },
            )
            async with asyncio.timeout(seconds):
                response = await answer
        except TimeoutError:
            message = f"the hub did not answer within {seconds:.0f} s"
            raise ApiDeviceError(message, "timeout") from None
        finally:
            self._answers.pop(frame_id, None)
        if not response.ok:
            error = response.error
            raise CodedError(error.message if error else "refused", error.code if error else None)
        return response.payload

    def claim(self, run_id: str) -> RunStream:
        """The stream of run `run_id`, with the frames that came before this call."""
        stream = self._runs.setdefault(run_id, RunStream())
        for frame in [f for f in self._unclaimed if f.stream_id == run_id]:
            self._unclaimed.remove(frame)
            stream.frames.put_nowait(frame)
        if self.closed:
            stream.frames.put_nowait(None)
        return stream

    def release(self, run_id: str) -> None:
        self._runs.pop(run_id, None)

    def _next_id(self) -> str:
        self._counter += 1
        return f"{self._prefix}-{self._counter}"

    # -- events from the gateway ------------------------------------------------------------

    async def _on_registered(self, data: Any = None) -> None:
        with contextlib.suppress(ValidationError):
            self._hubs = Registered.model_validate(data).hubs
        self._registered.set()

    async def _on_devices(self, data: Any = None) -> None:
        with contextlib.suppress(ValidationError):
            devices = Devices.model_validate(data).devices
            self._hubs = [d.device_id for d in devices if d.role == "hub"]
        self._presence.set()

    async def _on_receive(self, data: Any = None) -> None:
        try:
            frame = FRAME_ADAPTER.validate_python(data)
        except ValidationError:
            return
        if isinstance(frame, ResponseFrame):
            answer = self._answers.get(frame.payload.request_id)
            if answer is not None and not answer.done():
                answer.set_result(frame.payload)
        elif isinstance(frame, StreamFrame):
            stream = self._runs.get(frame.payload.stream_id)
            if stream is not None:
                stream.frames.put_nowait(frame.payload)
            elif self._answers:
                # A run asked for may stream before its `response` names it.
                self._unclaimed.append(frame.payload)

    async def _on_send_error(self, data: Any = None) -> None:
        try:
            error = SendError.model_validate(data)
        except ValidationError:
            return
        answer = self._answers.get(error.message_id or "")
        if answer is not None and not answer.done():
            answer.set_exception(ApiDeviceError(error.message, error.code))

    async def _on_refused(self, data: Any = None) -> None:
        if isinstance(data, dict) and "message" in data:
            self._refusal = str(data["message"])

    async def _on_disconnect(self, reason: Any = None) -> None:
        log.debug("API device %s disconnected: %s", self.device_id, reason)
        self.closed = True
        self._fail_all()

    def _fail_all(self) -> None:
        for answer in self._answers.values():
            if not answer.done():
                answer.set_exception(
                    ApiDeviceError("the connection to the hub was lost", "unavailable")
                )
        for stream in self._runs.values():
            stream.frames.put_nowait(None)


class ApiDevices:
    """One live `ApiDevice` per device id, made on first use, remade after it closed, and
    closed after `idle_seconds` without a call (so an unused key holds no connection)."""

    def __init__(self, url: Callable[[], str], *, idle_seconds: float = IDLE_SECONDS) -> None:
        self.url = url
        self.idle_seconds = idle_seconds
        self._devices: dict[str, ApiDevice] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._calls: dict[str, int] = {}
        self._idle: dict[str, asyncio.TimerHandle] = {}
        self._tasks = TaskFunnel("openai-api", log)

    def __len__(self) -> int:
        return sum(not d.closed for d in self._devices.values())

    @contextlib.asynccontextmanager
    async def use(self, device_id: str, token: str) -> AsyncIterator[ApiDevice]:
        """The device's connection for one call."""
        self._calls[device_id] = self._calls.get(device_id, 0) + 1
        idle = self._idle.pop(device_id, None)
        if idle is not None:
            idle.cancel()
        try:
            yield await self._get(device_id, token)
        finally:
            self._calls[device_id] -= 1
            if not self._calls[device_id]:
                del self._calls[device_id]
                self._idle[device_id] = asyncio.get_running_loop().call_later(
                    self.idle_seconds, self._close_idle, device_id
                )

    async def _get(self, device_id: str, token: str) -> ApiDevice:
        lock = self._locks.setdefault(device_id, asyncio.Lock())
        async with lock:
            device = self._devices.get(device_id)
            if device is None or device.closed:
                device = ApiDevice(self.url(), device_id, token)
                await device.connect()
                self._devices[device_id] = device
            return device

    def _close_idle(self, device_id: str) -> None:
        self._idle.pop(device_id, None)
        device = self._devices.pop(device_id, None)
        self._locks.pop(device_id, None)
        if device is not None:
            self._tasks.spawn(device.close(), name=f"openai-api:close {device_id}")

    async def close(self) -> None:
        for handle in self._idle.values():
            handle.cancel()
        self._idle.clear()
        devices, self._devices = list(self._devices.values()), {}
        await asyncio.gather(*(d.close() for d in devices), return_exceptions=True)
        await self._tasks.close()
