"""Everything the gateway needs from python-socketio / python-engineio beyond their public API,
in one module, so a library upgrade touches this file only (tested range: pyproject.toml).

- `JsonPacket`: the packet class (pydantic-core JSON, no binary scan).
- `RedisManager`: python-socketio's Redis manager with `ready()` (subscribe now and wait until
  the subscription holds) and `close()` (stop the listener, close the connection).
- `close_transports(server)`: close every Engine.IO transport without waiting for its queue.
- `close_client(client)`: release a client whose connect failed (its HTTP session included).
"""

from __future__ import annotations

import asyncio

import socketio
from pydantic import JsonValue
from pydantic_core import from_json, to_json
from socketio.packet import Packet


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


class RedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """python-socketio's Redis manager, subscribed on demand and closed on demand."""

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
        """Stop the listening task and close the Redis connection."""
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
