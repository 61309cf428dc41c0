"""The hub's connection to a gateway, as a hub device: linking, reconnecting, sending.

- Connects with the gateway token, sends its `greetings` (e.g. the hub's `guests`) ahead of
  any frame, and reconnects forever with exponential backoff and full
  jitter (a refused or unreachable gateway never stops the hub); an outage is logged once
  when it starts, then at a falling rate, then once when it ends (`gateway.outage`). A failed
  attempt releases its client (and so its HTTP session) at once.
- `emit()` drops (and counts) a frame when the link is down or the send fails: nothing is
  buffered while the gateway is away.
- Stream frames are paced by the gateway's acks: at most `STREAM_WINDOW` are unacknowledged
  at once, so neither this process nor the gateway ever holds a long backlog of them. While the
  window is full the stream waits, and the agent's bounded read channel coalesces or drops.
- Answers (response frames) are never paced, and stream frames take the socket's back lane
  (`LanedClient.emit_stream`): an answer goes out ahead of stream frames already queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Awaitable, Callable, Sequence

import socketio
from pydantic import BaseModel, ValidationError

from gateway.outage import OutageLog
from gateway.protocol import Devices, SendError
from gateway.sio import LanedClient, close_client

log = logging.getLogger("agenthub.hub_link")

# The largest WebSocket message the hub accepts from the gateway.
MAX_RECEIVE_BYTES = 64 * 1_048_576

STREAM_WINDOW = 4
ACK_WAIT_SECONDS = 10.0

OnReceive = Callable[[object], Awaitable[None]]


class GatewayConnection:
    """One hub device's link; `run()` links and relinks until cancelled."""

    def __init__(
        self,
        url: str,
        token: str,
        device_id: str,
        on_receive: OnReceive,
        *,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        greetings: Sequence[tuple[str, BaseModel]] = (),
    ) -> None:
        self.url = url
        self.greetings = greetings
        self.device_id = device_id
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.dropped_frames = 0
        self.last_error = "not connected yet"
        # None until the gateway's first `devices` push says who is connected.
        self.clients: set[str] | None = None
        self._token = token
        self._on_receive = on_receive
        self._client: LanedClient | None = None
        self._linked = asyncio.Event()
        self._down = asyncio.Event()
        self._refusal = False
        self.outage = OutageLog(log, "gateway")
        self._window = asyncio.Semaphore(STREAM_WINDOW)
        self._frame_prefix = secrets.token_hex(4)
        self._frame_counter = 0

    @property
    def linked(self) -> bool:
        return self._linked.is_set()

    async def wait_linked(self) -> None:
        await self._linked.wait()

    def frame_id(self) -> str:
        self._frame_counter += 1
        return f"{self.device_id}-{self._frame_prefix}-{self._frame_counter}"

    async def run(self) -> None:
        attempt = 0
        try:
            while True:
                attempt = 0 if await self._link_once() else attempt + 1
                ceiling = self.backoff_initial * 2 ** min(max(attempt - 1, 0), 16)
                ceiling = min(self.backoff_max, ceiling)
                await asyncio.sleep(random.uniform(0, ceiling))
        finally:
            self._linked.clear()
            if self._client is not None:
                with contextlib.suppress(Exception):
                    await self._client.disconnect()
                self._client = None

    async def _link_once(self) -> bool:
        """One connection, held until it drops; False if it could not be made."""
        client = self._new_client()
        self._client = client
        self._down.clear()
        self._refusal = False
        try:
            await client.connect(
                self.url,
                auth={"role": "hub", "deviceId": self.device_id, "token": self._token},
                transports=["websocket"],
                wait_timeout=10,
            )
        except socketio.exceptions.ConnectionError as exc:
            if not self._refusal:
                self.last_error = str(exc) or type(exc).__name__
            self.outage.failed(self.last_error)
            await close_client(client)
            return False
        self.outage.recovered()
        self._window = asyncio.Semaphore(STREAM_WINDOW)
        # Ahead of every frame of this link: the gateway handles a socket's events in order.
        for event, greeting in self.greetings:
            await client.emit(event, greeting.model_dump(mode="json"))
        self._linked.set()
        log.info("linked to the gateway as %s", self.device_id)
        await self._down.wait()
        self._linked.clear()
        self.clients = None
        with contextlib.suppress(Exception):
            await client.disconnect()
        return True

    def _new_client(self) -> LanedClient:
        # handle_sigint=False: signals belong to the process (graceful shutdown), not the client.
        client = LanedClient(
            reconnection=False,
            logger=logging.getLogger("socketio.client"),
            engineio_logger=logging.getLogger("engineio.client"),
            handle_sigint=False,
            # The gateway checks every frame against its `max_frame_bytes`; the hub takes what
            # it relays (aiohttp's default, 4 MiB, would drop the link on a photo's frame).
            websocket_extra_options={"max_msg_size": MAX_RECEIVE_BYTES},
        )
        client.on("receive", self._on_receive)
        client.on("devices", self._on_devices)
        client.on("send_error", self._on_send_error)
        client.on("going_away", self._on_going_away)
        client.on("disconnect", self._on_disconnect)
        client.on("connect_error", self._on_refused)
        return client

    async def _on_refused(self, data: object = None) -> None:
        # Called for refusals (data is the gateway's {code, message}) and network errors.
        if isinstance(data, dict) and "message" in data:
            self._refusal = True
            self.last_error = f"refused by the gateway: {data['message']}"

    async def _on_disconnect(self, reason: object = None) -> None:
        self.last_error = f"disconnected ({reason})"
        ours = reason == socketio.AsyncClient.reason.CLIENT_DISCONNECT
        log.log(logging.INFO if ours else logging.WARNING, "gateway link down: %s", reason)
        self._down.set()
        self._open_window()

    def _open_window(self) -> None:
        """Acks of the old window will never come: wake whoever waits on it (their frames
        then fail and are dropped) and start a fresh one."""
        old, self._window = self._window, asyncio.Semaphore(STREAM_WINDOW)
        for _ in range(STREAM_WINDOW):
            old.release()

    async def _on_going_away(self, data: object = None) -> None:
        self.last_error = "the gateway is restarting"

    async def _on_devices(self, data: object) -> None:
        try:
            devices = Devices.model_validate(data)
        except ValidationError:
            log.warning("ignoring a malformed devices event")
            return
        self.clients = {d.device_id for d in devices.devices if d.role == "client"}

    async def _on_send_error(self, data: object) -> None:
        try:
            error = SendError.model_validate(data)
        except ValidationError:
            return
        # A device that left mid-stream makes DEVICE_NOT_FOUND routine, not news.
        level = logging.DEBUG if error.code == "DEVICE_NOT_FOUND" else logging.WARNING
        log.log(
            level, "gateway refused frame %s: %s %s", error.message_id, error.code, error.message
        )

    async def emit(self, frame: BaseModel, *, answer: bool = False) -> bool:
        """Send one frame; False (and dropped) when the link is down or the send fails.
        Stream frames wait for room in the ack window; answers (`answer=True`) never wait,
        and go out ahead of any stream frame already queued."""
        client = self._client
        if client is None or not self.linked:
            self.dropped_frames += 1
            return False
        data = frame.model_dump(mode="json")
        try:
            if answer:
                await client.emit("send", data)
                return True
            window = self._window
            async with asyncio.timeout(ACK_WAIT_SECONDS):
                await window.acquire()
            try:
                await client.emit_stream("send", data, callback=lambda *_: window.release())
            except BaseException:
                window.release()
                raise
        except TimeoutError:
            self.dropped_frames += 1
            log.warning("the gateway acknowledged no stream frame for %.0f s", ACK_WAIT_SECONDS)
            self._open_window()
            return False
        except Exception as exc:
            self.dropped_frames += 1
            log.debug("dropped a frame: %s", exc)
            return False
        return True
