"""HubLink: the hub's side of the gateway. Connects as a hub device and serves web clients.

- Connects with the gateway token and reconnects forever with exponential backoff and full
  jitter (a refused or unreachable gateway never stops the hub).
- A `message` frame clears lastRoute, records `agent_senders[agentId] = from`, writes the text
  with a web origin, and is answered with a `response` (requestId = the frame id) carrying the
  run id, or the reason it was refused.
- One consumer per agent over `agent.read()` turns events (filtered by `hub.filters.forward`
  for "web") into `stream` frames for every connected client device: all client devices are
  the owner's, so every open tab sees every reply; the device that wrote last is always included.
  `seq` counts the frames of one stream (the run), from 0, the same for every device, so a
  device that missed frames (or joined mid-stream) sees a jump.
- `message_update` carries the full text, so updates of one message are coalesced: the first
  goes at once, later ones at most one per `coalesce_window`; `message_end` supersedes them.
- A send failure is logged and the frame dropped: the consumer never dies and never buffers
  while the gateway is away (clients refetch history after reconnecting). While connected, a
  long outgoing queue pauses the consumer, so the agent's bounded channel absorbs the burst.
- Requests: `agents.list`, `history {agentId, limit, before?}`, `status`, `abort {agentId}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import socketio
from pydantic import BaseModel, JsonValue, ValidationError
from pydantic_core import to_json

from gateway.protocol import (
    FRAME_ADAPTER,
    Devices,
    MessageAccepted,
    MessageFrame,
    RequestFrame,
    ResponseError,
    ResponseFrame,
    ResponsePayload,
    SendError,
    StreamFrame,
    StreamPayload,
    make_frame,
)
from hub.agent import AsyncAgent
from hub.errors import CodedError, UnknownAgentError
from hub.events import (
    AgentEnd,
    AgentEvent,
    MessageEnd,
    MessageUpdate,
    ReadGap,
    ReadItem,
)
from hub.filters import forward
from hub.health import SubsystemHealth
from hub.hub import Hub
from hub.origin import Origin
from hub.requests import AgentParams, HistoryAnswer, HistoryParams, HubRequests

log = logging.getLogger("agenthub.hub_link")

COALESCE_WINDOW = 0.04
MAX_QUEUED_PACKETS = 2000
MAX_TRACKED_STREAMS = 10_000


class _RequestFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class HubLink:
    """The hub device on a gateway. A Service: `start()` returns at once; linking goes on in
    the background (`linked` says whether it is up, `wait_linked()` waits for it)."""

    def __init__(
        self,
        hub: Hub,
        url: str,
        token: str,
        device_id: str = "hub",
        *,
        coalesce_window: float = COALESCE_WINDOW,
        max_frame_bytes: int = 1_048_576,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self.hub = hub
        self.requests = HubRequests(hub)
        self.url = url
        self.device_id = device_id
        self.coalesce_window = coalesce_window
        self.max_frame_bytes = max_frame_bytes
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.agent_senders: dict[str, str] = {}
        self.dropped_frames = 0
        self._token = token
        # None until the gateway's first `devices` push says who is connected.
        self._clients: set[str] | None = None
        self._seqs: dict[str, int] = {}
        self._frame_prefix = secrets.token_hex(4)
        self._frame_counter = 0
        self._client: socketio.AsyncClient | None = None
        self._linked = asyncio.Event()
        self._down = asyncio.Event()
        self._stopping = False
        self._last_error = "not connected yet"
        self._refusal = False
        self._tasks: list[asyncio.Task[None]] = []
        self._requests: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        return "hub_link"

    @property
    def linked(self) -> bool:
        return self._linked.is_set()

    @property
    def clients(self) -> frozenset[str]:
        """Client devices connected to the gateway, as its last `devices` push said."""
        return frozenset(self._clients or ())

    async def wait_linked(self) -> None:
        await self._linked.wait()

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._stopping = False
        self._tasks = [loop.create_task(self._link_forever(), name="hub-link")]
        for agent in self.hub.agents.values():
            self._tasks.append(
                loop.create_task(self._consume(agent), name=f"hub-link:{agent.agent_id}")
            )
        self.hub.health.register("hub_link", self._probe)

    async def stop(self) -> None:
        self._stopping = True
        for task in [*self._tasks, *self._requests]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._requests, return_exceptions=True)
        self._tasks = []
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.disconnect()
            self._client = None
        self._linked.clear()

    def _probe(self) -> SubsystemHealth:
        where = urlsplit(self.url).netloc or self.url
        if self.linked:
            return SubsystemHealth(
                name="hub_link",
                status="ok",
                detail=f"linked to {where} as {self.device_id}; {len(self.clients)} clients",
            )
        return SubsystemHealth(
            name="hub_link", status="degraded", detail=f"not linked to {where}: {self._last_error}"
        )

    # -- the link ---------------------------------------------------------------------------

    def _new_client(self) -> socketio.AsyncClient:
        # handle_sigint=False: signals belong to the process (graceful shutdown), not the client.
        client = socketio.AsyncClient(
            reconnection=False, logger=False, engineio_logger=False, handle_sigint=False
        )
        client.on("receive", self._on_receive)
        client.on("devices", self._on_devices)
        client.on("send_error", self._on_send_error)
        client.on("going_away", self._on_going_away)
        client.on("disconnect", self._on_disconnect)
        client.on("connect_error", self._on_refused)
        return client

    async def _link_forever(self) -> None:
        attempt = 0
        while not self._stopping:
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
                    self._last_error = str(exc) or type(exc).__name__
                log.warning("gateway link failed: %s", self._last_error)
            else:
                attempt = 0
                self._linked.set()
                log.info("linked to the gateway as %s", self.device_id)
                await self._down.wait()
                self._linked.clear()
                self._clients = None
                with contextlib.suppress(Exception):
                    await client.disconnect()
            attempt += 1
            ceiling = min(self.backoff_max, self.backoff_initial * 2 ** min(attempt - 1, 16))
            await asyncio.sleep(random.uniform(0, ceiling))

    async def _on_refused(self, data: object = None) -> None:
        # Called for refusals (data is the gateway's {code, message}) and network errors.
        if isinstance(data, dict) and "message" in data:
            self._refusal = True
            self._last_error = f"refused by the gateway: {data['message']}"

    async def _on_disconnect(self, reason: object = None) -> None:
        self._last_error = f"disconnected ({reason})"
        log.info("gateway link down: %s", reason)
        self._down.set()

    async def _on_going_away(self, data: object = None) -> None:
        self._last_error = "the gateway is restarting"

    async def _on_devices(self, data: object) -> None:
        try:
            devices = Devices.model_validate(data)
        except ValidationError:
            log.warning("ignoring a malformed devices event")
            return
        self._clients = {d.device_id for d in devices.devices if d.role == "client"}

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

    async def _emit(self, frame: BaseModel) -> bool:
        """Send one frame; False (and dropped) when the link is down or the send fails."""
        client = self._client
        if client is None or not self.linked:
            self.dropped_frames += 1
            return False
        try:
            queue = client.eio.queue
            # Backpressure: the engine.io queue is unbounded and not ours to signal on, so poll
            # it; meanwhile the agent's bounded read() channel coalesces or drops.
            while queue.qsize() > MAX_QUEUED_PACKETS and self.linked:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            await client.emit("send", frame.model_dump(mode="json"))
        except Exception as exc:
            self.dropped_frames += 1
            log.debug("dropped a frame: %s", exc)
            return False
        return True

    def _frame_id(self) -> str:
        self._frame_counter += 1
        return f"{self.device_id}-{self._frame_prefix}-{self._frame_counter}"

    # -- incoming frames --------------------------------------------------------------------

    async def _on_receive(self, data: object) -> None:
        try:
            frame = FRAME_ADAPTER.validate_python(data)
        except ValidationError as exc:
            log.warning("ignoring a malformed frame from the gateway: %s", exc.errors()[0]["msg"])
            return
        if isinstance(frame, MessageFrame):
            await self._on_message(frame)
        elif isinstance(frame, RequestFrame):
            task = asyncio.get_running_loop().create_task(self._on_request(frame))
            self._requests.add(task)
            task.add_done_callback(self._requests.discard)

    async def _on_message(self, frame: MessageFrame) -> None:
        agent_id = frame.payload.agent_id
        try:
            run_id = self.hub.submit(
                agent_id, frame.payload.content, Origin(surface="web", device_id=frame.sender)
            )
        except CodedError as exc:
            await self._answer(frame, error=(exc.code, str(exc)))
            return
        self.agent_senders[agent_id] = frame.sender
        await self._answer(frame, answer=MessageAccepted(run_id=run_id))

    async def _on_request(self, frame: RequestFrame) -> None:
        try:
            answer = self._handle_request(frame.payload.method, frame.payload.params)
        except (_RequestFailed, UnknownAgentError) as exc:
            await self._answer(frame, error=(exc.code, str(exc)))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "params"
            await self._answer(frame, error=("invalid_params", f"{where}: {first['msg']}"))
        else:
            await self._answer(frame, answer=answer)

    def _handle_request(self, method: str, params: dict[str, JsonValue]) -> BaseModel:
        if method == "agents.list":
            return self.requests.agents()
        if method == "history":
            return self._history(HistoryParams.model_validate(params))
        if method == "status":
            return self.requests.status()
        if method == "abort":
            return self.requests.abort(AgentParams.model_validate(params))
        raise _RequestFailed("unknown_method", f"unknown method {method!r}")

    def _history(self, params: HistoryParams) -> HistoryAnswer:
        answer = self.requests.history(params)
        entries = answer.entries
        # Leave the oldest entries out until the answer fits one frame (with room to spare).
        budget = self.max_frame_bytes * 9 // 10
        while entries and len(to_json(answer.model_dump(mode="json"))) > budget:
            entries = entries[max(1, len(entries) // 4) :]
            answer = answer.model_copy(update={"entries": entries, "truncated": True})
        return answer

    async def _answer(
        self,
        frame: MessageFrame | RequestFrame,
        *,
        answer: BaseModel | None = None,
        error: tuple[str, str] | None = None,
    ) -> None:
        request_id = frame.payload.request_id if isinstance(frame, RequestFrame) else frame.id
        if error is not None:
            payload = ResponsePayload(
                request_id=request_id,
                ok=False,
                error=ResponseError(code=error[0], message=error[1]),
            )
        else:
            assert answer is not None
            payload = ResponsePayload(
                request_id=request_id, ok=True, payload=answer.model_dump(mode="json")
            )
        await self._emit(
            make_frame(
                ResponseFrame,
                frame_id=self._frame_id(),
                sender=self.device_id,
                to=frame.sender,
                payload=payload,
            )
        )

    # -- outgoing streams -------------------------------------------------------------------

    def _targets(self, agent_id: str) -> set[str]:
        # Every connected client device, and always the one that wrote last (presence pushes
        # are debounced, so a device may write before the hub hears it connected).
        targets = set(self._clients or ())
        sender = self.agent_senders.get(agent_id)
        if sender is not None:
            targets.add(sender)
        return targets

    async def _send_event(self, agent_id: str, stream_id: str, event: dict[str, JsonValue]) -> None:
        # One count per stream, the same for every device: a device that joins mid-stream
        # sees a first seq above 0 and knows it missed the beginning.
        seq = self._seqs.get(stream_id, 0)
        self._seqs[stream_id] = seq + 1
        payload = StreamPayload(agent_id=agent_id, stream_id=stream_id, seq=seq, event=event)
        for target in sorted(self._targets(agent_id)):
            frame = make_frame(
                StreamFrame,
                frame_id=self._frame_id(),
                sender=self.device_id,
                to=target,
                payload=payload,
            )
            await self._emit(frame)
        if len(self._seqs) > MAX_TRACKED_STREAMS:
            # Streams whose run never ended (a lost agent_end): forget the oldest half.
            for key in list(self._seqs)[: MAX_TRACKED_STREAMS // 2]:
                del self._seqs[key]

    def _end_stream(self, stream_id: str) -> None:
        self._seqs.pop(stream_id, None)

    async def _consume(self, agent: AsyncAgent) -> None:
        """Forward one agent's read() stream for as long as the link runs."""
        coalescer = _Coalescer(self.coalesce_window, time.monotonic)
        items = agent.read()
        waiting: asyncio.Future[ReadItem] | None = None
        try:
            while True:
                if waiting is None:
                    waiting = asyncio.ensure_future(anext(items))
                done, _ = await asyncio.wait({waiting}, timeout=coalescer.wait_time())
                for update in coalescer.due():
                    await self._forward(agent.agent_id, update)
                if not done:
                    continue
                try:
                    item = waiting.result()
                except StopAsyncIteration:
                    return
                finally:
                    waiting = None
                try:
                    await self._handle_item(agent.agent_id, item, coalescer)
                except Exception:
                    log.exception("forwarding an event of %s failed; going on", agent.agent_id)
        finally:
            if waiting is not None:
                waiting.cancel()
                await asyncio.gather(waiting, return_exceptions=True)
            # Closing the generator releases the agent's single reader slot for the next link.
            await items.aclose()

    async def _handle_item(self, agent_id: str, item: ReadItem, coalescer: _Coalescer) -> None:
        if isinstance(item, ReadGap):
            for update in coalescer.flush():
                await self._forward(agent_id, update)
            await self._send_event(agent_id, "read_gap", item.model_dump(mode="json"))
            return
        if not forward("web", item):
            return
        if isinstance(item, MessageUpdate):
            if coalescer.offer(item):
                await self._forward(agent_id, item)
            return
        if isinstance(item, MessageEnd):
            coalescer.drop(item.message_id)
        for update in coalescer.flush():
            await self._forward(agent_id, update)
        await self._forward(agent_id, item)
        if isinstance(item, AgentEnd):
            self._end_stream(item.run_id)

    async def _forward(self, agent_id: str, event: AgentEvent) -> None:
        await self._send_event(agent_id, event.run_id, event.model_dump(mode="json"))


class _Coalescer:
    """Per-message rate limit for `message_update`: at most one per window, latest wins."""

    def __init__(self, window: float, clock: Callable[[], float]) -> None:
        self.window = window
        self._clock = clock
        self._last_sent: dict[str, float] = {}
        self._pending: dict[str, MessageUpdate] = {}

    def offer(self, update: MessageUpdate) -> bool:
        """True: send it now. False: held back (it replaces any held update)."""
        now = self._clock()
        last = self._last_sent.get(update.message_id)
        if update.message_id not in self._pending and (last is None or now - last >= self.window):
            self._last_sent[update.message_id] = now
            return True
        self._pending[update.message_id] = update
        return False

    def wait_time(self) -> float | None:
        if not self._pending:
            return None
        now = self._clock()
        return max(0.0, min(self._last_sent.get(m, now) + self.window - now for m in self._pending))

    def due(self) -> list[MessageUpdate]:
        now = self._clock()
        ready = [m for m in self._pending if self._last_sent.get(m, now) + self.window <= now]
        for message_id in ready:
            self._last_sent[message_id] = now
        return [self._pending.pop(m) for m in ready]

    def flush(self) -> list[MessageUpdate]:
        now = self._clock()
        updates = list(self._pending.values())
        for update in updates:
            self._last_sent[update.message_id] = now
        self._pending.clear()
        return updates

    def drop(self, message_id: str) -> None:
        """The message ended: its held update is superseded, and it needs no more timing."""
        self._pending.pop(message_id, None)
        self._last_sent.pop(message_id, None)
