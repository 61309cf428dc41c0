"""Device presence: which devices are connected, on which sockets, on which gateway node.

`LocalPresence` serves a single node. `RedisPresence` shares presence between nodes on one
Redis, so a frame from a client on node A finds a hub on node B. Each node refreshes a
heartbeat key; sockets of a node whose heartbeat expired (it crashed) are ignored and swept.

Redis keys (prefix `P`): `P:ids` set of device ids; `P:meta` hash id -> {role, label};
`P:dev:<id>` hash socket id -> node id; `P:node:<node>` heartbeat with a TTL; `P:guests` hash
hub id -> the guest devices it declared (a JSON list).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

import redis.asyncio as aioredis
from pydantic import TypeAdapter

from gateway.protocol import DeviceInfo, Role
from hub.wire import WireModel

log = logging.getLogger("agenthub.gateway")

HEARTBEAT_SECONDS = 5.0
HEARTBEAT_TTL_SECONDS = 15


@dataclass(slots=True)
class _Device:
    role: Role
    label: str
    sids: set[str] = field(default_factory=set)


class Presence(Protocol):
    """Connected devices, shared by whatever nodes see the same presence."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def add(self, device_id: str, role: Role, label: str, sid: str) -> None: ...

    async def remove(self, device_id: str, sid: str) -> None: ...

    async def lookup(self, device_id: str) -> DeviceInfo | None: ...

    async def sids(self, device_id: str) -> list[str]: ...

    async def devices(self) -> list[DeviceInfo]: ...

    async def declare_guests(self, hub_id: str, devices: frozenset[str]) -> None: ...

    async def guests(self) -> frozenset[str]: ...

    async def is_guest(self, device_id: str) -> bool: ...


class LocalPresence:
    """Presence of one node, in memory."""

    def __init__(self) -> None:
        self._devices: dict[str, _Device] = {}
        self._guests: dict[str, frozenset[str]] = {}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self._devices.clear()

    async def add(self, device_id: str, role: Role, label: str, sid: str) -> None:
        device = self._devices.setdefault(device_id, _Device(role, label))
        device.sids.add(sid)

    async def remove(self, device_id: str, sid: str) -> None:
        device = self._devices.get(device_id)
        if device is None:
            return
        device.sids.discard(sid)
        if not device.sids:
            del self._devices[device_id]

    async def lookup(self, device_id: str) -> DeviceInfo | None:
        device = self._devices.get(device_id)
        if device is None:
            return None
        return DeviceInfo(
            device_id=device_id, role=device.role, label=device.label, connections=len(device.sids)
        )

    async def sids(self, device_id: str) -> list[str]:
        device = self._devices.get(device_id)
        return sorted(device.sids) if device else []

    async def devices(self) -> list[DeviceInfo]:
        return [
            DeviceInfo(device_id=i, role=d.role, label=d.label, connections=len(d.sids))
            for i, d in sorted(self._devices.items())
        ]

    async def declare_guests(self, hub_id: str, devices: frozenset[str]) -> None:
        self._guests[hub_id] = devices

    async def guests(self) -> frozenset[str]:
        return frozenset().union(*self._guests.values())

    async def is_guest(self, device_id: str) -> bool:
        return any(device_id in devices for devices in self._guests.values())


_DEVICE_LIST: TypeAdapter[list[str]] = TypeAdapter(list[str])


class _Meta(WireModel):
    role: Role
    label: str


class RedisPresence:
    """Presence shared by every gateway node on one Redis."""

    def __init__(self, url: str, prefix: str, node_id: str) -> None:
        self._redis: aioredis.Redis = aioredis.Redis.from_url(url, decode_responses=True)
        self._prefix = prefix
        self.node_id = node_id
        self._alive: dict[str, tuple[bool, float]] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self._own: dict[str, str] = {}

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    async def start(self) -> None:
        await self._beat()
        self._heartbeat = asyncio.get_running_loop().create_task(
            self._beat_forever(), name="gateway-presence-heartbeat"
        )

    async def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        try:
            for sid, device_id in list(self._own.items()):
                await self.remove(device_id, sid)
            await self._redis.delete(self._key("node", self.node_id))
        except Exception as exc:
            log.warning("could not clear this node's presence in Redis: %s", exc)
        self._own.clear()
        await self._redis.aclose()

    async def _beat(self) -> None:
        await self._redis.set(
            self._key("node", self.node_id), str(time.time()), ex=HEARTBEAT_TTL_SECONDS
        )

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self._beat()
            except Exception as exc:
                log.warning("presence heartbeat to Redis failed: %s", exc)

    async def _node_alive(self, node: str) -> bool:
        if node == self.node_id:
            return True
        cached = self._alive.get(node)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        alive = bool(await self._redis.exists(self._key("node", node)))
        self._alive[node] = (alive, now + HEARTBEAT_SECONDS)
        return alive

    async def add(self, device_id: str, role: Role, label: str, sid: str) -> None:
        meta = _Meta(role=role, label=label).model_dump_json()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.sadd(self._key("ids"), device_id)
            pipe.hset(self._key("meta"), device_id, meta)
            pipe.hset(self._key("dev", device_id), sid, self.node_id)
            await pipe.execute()
        self._own[sid] = device_id

    async def remove(self, device_id: str, sid: str) -> None:
        self._own.pop(sid, None)
        key = self._key("dev", device_id)
        await self._redis.hdel(key, sid)
        await self._forget_if_empty(device_id)

    async def _forget_if_empty(self, device_id: str) -> None:
        if await self._redis.hlen(self._key("dev", device_id)) == 0:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.srem(self._key("ids"), device_id)
                pipe.hdel(self._key("meta"), device_id)
                await pipe.execute()

    async def sids(self, device_id: str) -> list[str]:
        """Live socket ids of the device; sockets of dead nodes are swept on the way."""
        key = self._key("dev", device_id)
        raw = await self._redis.hgetall(key)
        live: list[str] = []
        dead: list[str] = []
        for sid, node in raw.items():
            if await self._node_alive(str(node)):
                live.append(str(sid))
            else:
                dead.append(str(sid))
        if dead:
            await self._redis.hdel(key, *dead)
            await self._forget_if_empty(device_id)
        return sorted(live)

    async def lookup(self, device_id: str) -> DeviceInfo | None:
        sids = await self.sids(device_id)
        if not sids:
            return None
        raw = await self._redis.hget(self._key("meta"), device_id)
        if raw is None:
            return None
        meta = _Meta.model_validate_json(raw)
        return DeviceInfo(
            device_id=device_id, role=meta.role, label=meta.label, connections=len(sids)
        )

    async def devices(self) -> list[DeviceInfo]:
        ids = sorted(str(i) for i in await self._redis.smembers(self._key("ids")))
        found = [await self.lookup(i) for i in ids]
        return [d for d in found if d is not None]

    async def declare_guests(self, hub_id: str, devices: frozenset[str]) -> None:
        listed = _DEVICE_LIST.dump_json(sorted(devices)).decode()
        await self._redis.hset(self._key("guests"), hub_id, listed)

    async def guests(self) -> frozenset[str]:
        declared = await self._redis.hvals(self._key("guests"))
        return frozenset(d for raw in declared for d in _DEVICE_LIST.validate_json(raw))

    async def is_guest(self, device_id: str) -> bool:
        return device_id in await self.guests()
