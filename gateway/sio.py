"""Everything the gateway needs from python-socketio / python-engineio beyond their public API,
in one module, so a library upgrade touches this file only (tested range: pyproject.toml).

- `JsonPacket`: the packet class (pydantic-core JSON, no binary scan).
- Two lanes per socket: `LanedServer` / `LanedClient` give every Engine.IO socket an outgoing
  queue in which every packet (answers, errors, notices, acks, the library's own) goes out
  ahead of queued `StreamPacket`s, which keep their own order behind them; the server's
  `streams(event, data)` says which emits are stream packets, `LanedClient.emit_stream` is the
  client's. A server handler may return a future to acknowledge later without holding up
  the socket. A connection whose transport closes, or which `disconnect()` ends, while its
  connect handler still runs is ended once the handler returns (the library would keep it).
- `FanOutManager` delivers an emit by putting one encoded packet into each recipient's queue
  (no task per recipient): other packets at once, stream packets from an ordered backlog a
  slice of sockets per loop turn (`delivered()` resolves when the backlog so far is out).
- `RedisManager`: python-socketio's Redis manager with `ready()` (subscribe now and wait until
  the subscription holds) and `close()` (stop the listener, close the connection).
- `close_transports(server)`: close every Engine.IO transport without waiting for its queue.
- `close_client(client)`: release a client whose connect failed (its HTTP session included).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import engineio
import socketio
from engineio import packet as eio_packet
from pydantic import JsonValue
from pydantic_core import from_json, to_json
from socketio.packet import ACK, EVENT, Packet

IsStream = Callable[[str, object], bool]


class _Json:
    """The two functions python-socketio calls on its `json` module."""

    @staticmethod
    def dumps(data: object, **_options: object) -> str:
        return to_json(data).decode()

    @staticmethod
    def loads(text: str | bytes, **_options: object) -> JsonValue:
        value: JsonValue = from_json(text)
        return value


class JsonPacket(Packet):  # type: ignore[misc]
    """The gateway's Socket.IO packet class: JSON by pydantic-core, no binary scan.

    python-socketio encodes every outgoing packet with the standard `json` module and first
    walks the whole payload looking for bytes (binary attachments). The gateway protocol is
    JSON text only, so this class skips the walk, which cuts the relay's CPU per frame.
    Incoming binary packets still decode (and then fail validation)."""

    uses_binary_events = False
    json = _Json


class StreamPacket(eio_packet.Packet):  # type: ignore[misc]
    """An Engine.IO packet every other packet may overtake (a stream frame)."""


class _LanedQueue(asyncio.Queue[object]):
    """An outgoing packet queue in two lanes: stream packets at the back, in their own order;
    every other item goes ahead of all of them, in its own order (the hooks are
    asyncio.Queue's own, as PriorityQueue and LifoQueue use them)."""

    _queue: deque[object]

    def _init(self, maxsize: int) -> None:
        self._queue = deque()
        self._lead = 0
        self._waiting: deque[asyncio.Future[object]] = deque()

    def get(self) -> asyncio.Future[object]:  # type: ignore[override]
        """The next item, as a future rather than a coroutine: python-engineio's writers wait
        on it with `asyncio.wait_for`, which wraps a coroutine in a task of its own; that was
        a task, and a loop turn, for every packet of every socket."""
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        self._hand_over()
        return future

    def put_nowait(self, item: object) -> None:
        super().put_nowait(item)
        self._hand_over()

    def _hand_over(self) -> None:
        while self._waiting and self._queue:
            waiter = self._waiting.popleft()
            if not waiter.done():  # one that gave up (timed out, cancelled) is passed over
                waiter.set_result(self.get_nowait())

    def _put(self, item: object) -> None:
        if isinstance(item, StreamPacket):
            self._queue.append(item)
        else:
            self._queue.insert(self._lead, item)
            self._lead += 1

    def _get(self) -> object:
        if self._lead:
            self._lead -= 1
        return self._queue.popleft()

    def streams_behind(self) -> int:
        return len(self._queue) - self._lead


class _LanedEngineServer(engineio.AsyncServer):  # type: ignore[misc]
    def create_queue(self, *args: object, **kwargs: object) -> _LanedQueue:
        return _LanedQueue()


class _LanedEngineClient(engineio.AsyncClient):  # type: ignore[misc]
    def create_queue(self, *args: object, **kwargs: object) -> _LanedQueue:
        return _LanedQueue()


class LanedServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server with two-lane socket queues and `streams(event, data)`.

    An event handler may return a future: the acknowledgement then goes out when it resolves
    (with no arguments), while the socket's next packets are handled at once."""

    def __init__(self, *, streams: IsStream, **options: object) -> None:
        self.streams = streams
        # (eio sid, namespace) of pending connections `disconnect()` was asked to end.
        self._ended_while_pending: set[tuple[str, str]] = set()
        super().__init__(**options)

    def _engineio_server_class(self) -> type[engineio.AsyncServer]:
        return _LanedEngineServer

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: object) -> None:
        """python-socketio ignores a transport close, and `disconnect()`, while a connection
        is still pending (its connect handler awaiting), and then connects it anyway: the
        connection would stay in every book for good. Ended now, once it has connected."""
        namespace = namespace or "/"
        try:
            await super()._handle_connect(eio_sid, namespace, data)
        finally:
            ended = (eio_sid, namespace) in self._ended_while_pending
            self._ended_while_pending.discard((eio_sid, namespace))
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is None or not self.manager.is_connected(sid, namespace):
            return  # refused
        socket = self.eio.sockets.get(eio_sid)
        if socket is None or socket.closed or socket.closing:
            await self._handle_disconnect(eio_sid, namespace, self.reason.TRANSPORT_CLOSE)
        elif ended:
            await self.disconnect(sid, namespace, ignore_queue=True)

    async def disconnect(
        self, sid: str, namespace: str | None = None, ignore_queue: bool = False
    ) -> None:
        namespace = namespace or "/"
        if self.manager.is_pre_connected(sid, namespace):
            eio_sid = self.manager.eio_sid_from_sid(sid, namespace)
            self._ended_while_pending.add((eio_sid, namespace))
            return
        await super().disconnect(sid, namespace, ignore_queue=ignore_queue)

    async def _handle_event_internal(
        self,
        server: socketio.AsyncServer,
        sid: str,
        eio_sid: str,
        data: list[object],
        namespace: str,
        id: int | None,
    ) -> None:
        result = await server._trigger_event(data[0], namespace, sid, *data[1:])
        if result == self.not_handled or id is None:
            return
        if isinstance(result, asyncio.Future):
            result.add_done_callback(lambda _: self._ack_now(eio_sid, namespace, id, []))
            return
        args = [] if result is None else list(result) if isinstance(result, tuple) else [result]
        self._ack_now(eio_sid, namespace, id, args)

    def _ack_now(self, eio_sid: str, namespace: str, id: int, args: list[object]) -> None:
        socket = self.eio.sockets.get(eio_sid)
        if socket is None or socket.closed:
            return
        encoded = self.packet_class(ACK, namespace=namespace, id=id, data=args).encode()
        for part in encoded if isinstance(encoded, list) else [encoded]:
            socket.queue.put_nowait(eio_packet.Packet(eio_packet.MESSAGE, part))


class LanedClient(socketio.AsyncClient):  # type: ignore[misc]
    """python-socketio's client with a two-lane outgoing queue (see `emit_stream`)."""

    def _engineio_client_class(self) -> type[engineio.AsyncClient]:
        return _LanedEngineClient

    async def emit_stream(
        self, event: str, data: object, callback: Callable[..., object] | None = None
    ) -> None:
        """`emit`, as a stream packet: whatever the client emits later may overtake it.
        Raises ConnectionError when not connected."""
        if not self.connected or self.eio.state != "connected":
            raise ConnectionError("not connected")
        ack = self._generate_ack_id("/", callback) if callback is not None else None
        encoded = self.packet_class(EVENT, namespace="/", data=[event, data], id=ack).encode()
        for part in encoded if isinstance(encoded, list) else [encoded]:
            self.eio.queue.put_nowait(StreamPacket(eio_packet.MESSAGE, part))


class _Batch:
    """One ordinary emit on its way: its packets, its recipients, how far it got."""

    def __init__(self, packets: list[eio_packet.Packet], recipients: list[str]) -> None:
        self.packets = packets
        self.recipients = recipients
        self.done = 0
        self.delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class FanOutManager(socketio.AsyncManager):  # type: ignore[misc]
    """Delivers an emit without a task per recipient: the packet is encoded once and put into
    each recipient socket's queue.

    Stream emits (the server's `streams(event, data)`) join a backlog that one task delivers
    in order, `SLICE` sockets per event-loop turn, so a fan-out to hundreds of sockets never
    holds the loop (and with it every answer) for long; every other emit is put at once, in
    the lead lane. `delivered()` says when the backlog so far is out; a socket with
    `MAX_BEHIND` stream packets queued misses the next ones (`skipped` counts them)."""

    # A loop turn carries the writes of at most SLICE sockets, and every hop of an answer
    # waits for a turn: a small slice keeps the turns short (for a few more turns an event).
    SLICE = 8
    MAX_BEHIND = 1024

    def __init__(self) -> None:
        super().__init__()
        self._backlog: deque[_Batch] = deque()
        self._worker: asyncio.Task[None] | None = None
        self.skipped = 0

    async def emit(
        self,
        event: str,
        data: object,
        namespace: str | None,
        room: object = None,
        skip_sid: object = None,
        callback: object = None,
        to: object = None,
        **kwargs: object,
    ) -> None:
        if callback is not None:
            await super().emit(event, data, namespace, room, skip_sid, callback, to, **kwargs)
            return
        namespace = namespace or "/"
        if namespace not in self.rooms:
            return
        args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
        parts = self.server.packet_class(EVENT, namespace=namespace, data=[event, *args]).encode()
        parts = parts if isinstance(parts, list) else [parts]
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        recipients = [e for s, e in self.get_participants(namespace, to or room) if s not in skip]
        if not self.server.streams(event, data):
            lead = [eio_packet.Packet(eio_packet.MESSAGE, part) for part in parts]
            self._put(lead, recipients, stream=False)
            return
        packets = [StreamPacket(eio_packet.MESSAGE, part) for part in parts]
        self._backlog.append(_Batch(packets, recipients))
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._deliver())

    def delivered(self) -> asyncio.Future[None]:
        """Resolves once every stream emit made so far is in its sockets' queues."""
        if self._backlog:
            return self._backlog[-1].delivered
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def _put(self, packets: list[eio_packet.Packet], eio_sids: list[str], stream: bool) -> None:
        sockets = self.server.eio.sockets
        for eio_sid in eio_sids:
            socket = sockets.get(eio_sid)
            if socket is None or socket.closed:
                continue
            if stream and socket.queue.streams_behind() >= self.MAX_BEHIND:
                self.skipped += 1
                continue
            for pkt in packets:
                socket.queue.put_nowait(pkt)

    async def _deliver(self) -> None:
        try:
            while self._backlog:
                batch = self._backlog[0]
                end = batch.done + self.SLICE
                self._put(batch.packets, batch.recipients[batch.done : end], stream=True)
                batch.done = end
                if end >= len(batch.recipients):
                    self._backlog.popleft()
                    batch.delivered.set_result(None)
                await asyncio.sleep(0)  # let answers and everything else have a turn
        finally:
            self._worker = None

    async def close_fan_out(self) -> None:
        """Stop delivering; what is still in the backlog is dropped."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        for batch in self._backlog:
            batch.delivered.cancel()
        self._backlog.clear()


class RedisManager(socketio.AsyncRedisManager, FanOutManager):  # type: ignore[misc]
    """python-socketio's Redis manager (each node delivers to its own sockets as
    `FanOutManager` does), subscribed on demand and closed on demand."""

    def __init__(self, url: str, *, channel: str) -> None:
        socketio.AsyncRedisManager.__init__(self, url, channel=channel)

    async def ready(self, server: socketio.AsyncServer) -> None:
        """Subscribe now and return once the subscription holds (python-socketio subscribes
        lazily, on a node's first connection, and a frame published to this node before then
        would be lost). Bound it with `asyncio.timeout`."""
        if not server.manager_initialized:
            server.manager_initialized = True
            self.initialize()
        while self.pubsub is None or not self.pubsub.subscribed:  # noqa: ASYNC110
            await asyncio.sleep(0.025)

    async def close(self) -> None:
        """Stop delivering and listening, and close the Redis connection."""
        await self.close_fan_out()
        thread = getattr(self, "thread", None)
        if isinstance(thread, asyncio.Task):
            thread.cancel()
            await asyncio.gather(thread, return_exceptions=True)
        if self.redis is not None:
            await self.redis.aclose()


async def close_transports(server: socketio.AsyncServer) -> None:
    """Close every Engine.IO transport at once, so the HTTP server has no open websocket to
    wait for; a peer that already left never drains its own queue, so none is awaited."""
    for socket in list(server.eio.sockets.values()):
        await socket.close(wait=False)
        socket.queue.put_nowait(None)  # ends the transport's writer, which closes it


async def close_client(client: socketio.AsyncClient) -> None:
    """Release everything a client holds after a failed or finished connection; without
    this a failed connect leaves its aiohttp session open (`Unclosed client session`)."""
    await client.eio.disconnect(abort=True)
