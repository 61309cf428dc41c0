"""GatewayServer: the Socket.IO relay between hub devices and client devices.

It wires the parts: the books on who is connected (`gateway.roster`: connects, disconnects,
`devices` pushes, revocations) with the connect decision (`gateway.admission`), the pairing
desk (`gateway.pairing`), the frame relay (`gateway.relay`), this node's sockets
(`gateway.connections`) and presence shared with other nodes (`gateway.presence`).
- Duplicate ids: a client device may hold up to `max_connections_per_device` sockets at once
  (browser tabs share a device), all of which receive its frames; a hub id already connected
  anywhere is refused, so two hubs never split one conversation.
- With `redis_url` the node runs on python-socketio's Redis manager and shares presence in
  Redis; it subscribes at start, before any client connects, so no early frame is lost.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from gateway.admission import Admission
from gateway.audience import Audience
from gateway.config import GatewayConfig
from gateway.connections import ConnectionTable
from gateway.http import GatewayStatus, add_health_routes
from gateway.mcp_http import McpHttpEndpoint
from gateway.openai_api import OpenAIApi
from gateway.origins import OriginPolicy
from gateway.pairing import PairingDesk
from gateway.presence import LocalPresence, Presence, RedisPresence
from gateway.protocol import DeviceInfo, GoingAway
from gateway.relay import Relay, is_stream
from gateway.roster import Roster
from gateway.sio import FanOutManager, JsonPacket, LanedServer, RedisManager, close_transports
from gateway.static import WebClientFiles
from hub.access import AccessStore
from hub.health import HealthRegistry, Probe, SubsystemHealth
from hub.tasks import TaskFunnel

log = logging.getLogger("agenthub.gateway")

REDIS_SUBSCRIBE_SECONDS = 5.0


class GatewayServer:
    """The gateway service. `app` is its aiohttp Application; add routes before `start()`."""

    def __init__(self, config: GatewayConfig, access: AccessStore, health: HealthRegistry) -> None:
        self.config = config
        self.access = access
        self.health = health
        self.origins = OriginPolicy(config)
        self.node_id = f"gw-{secrets.token_hex(4)}"
        self._redis: RedisManager | None = None
        if config.redis_url:
            self._redis = RedisManager(config.redis_url, channel=f"{config.redis_prefix}:sio")
        self.fan_out: FanOutManager = self._redis or FanOutManager()
        self.sio = LanedServer(
            streams=is_stream,
            async_mode="aiohttp",
            # The web client and the hub link use WebSocket only; long-polling would be exposure
            # without use (a big POST on a polling session held its request for 30 s or more).
            transports=["websocket"],
            client_manager=self.fan_out,
            cors_allowed_origins=self.origins.origin_allowed,
            # Frames up to 4x the limit reach the handler and get TOO_LARGE; past that the
            # transport itself is closed (parsing them would be the attack).
            max_http_buffer_size=config.max_frame_bytes * 4 + 65536,
            ping_interval=config.ping_interval,
            ping_timeout=config.ping_timeout,
            # One socket's frames are handled one after another, in arrival order: a hub's
            # stream frames keep their order even when a handler waits on Redis.
            async_handlers=False,
            serializer=JsonPacket,
            # Named loggers, never the libraries' defaults (which add a handler of their own
            # and so bypass the process's logging policy, app/logs.py).
            logger=logging.getLogger("socketio.server"),
            engineio_logger=logging.getLogger("engineio.server"),
        )
        self.app = web.Application(
            client_max_size=config.max_frame_bytes * 4 + 65536,
            middlewares=[self.origins.middleware],
        )
        self.sio.attach(self.app)
        WebClientFiles(config.web_root).add_routes(self.app)
        add_health_routes(self.app, health, self._status)
        self.openai_api = OpenAIApi(access, self._local_url)
        self.openai_api.add_routes(self.app)
        self.mcp_http = McpHttpEndpoint(access, self.openai_api.devices)
        self.mcp_http.add_routes(self.app)
        self.presence: Presence = (
            RedisPresence(config.redis_url, config.redis_prefix, self.node_id)
            if config.redis_url
            else LocalPresence()
        )
        self._tasks = TaskFunnel("gateway", log)
        self.table = ConnectionTable(config)
        self.admission = Admission(config, access, self.presence)
        self.pairing = PairingDesk(config, access, self._to_sid, self._tasks)
        rooms = (self.sio.enter_room, self.sio.leave_room)
        self.audience = Audience(self.table, self.presence, *rooms)
        self.relay = Relay(
            config, self.table, self.presence, self._to_room, self._to_sid, self.fan_out.delivered
        )
        self.roster = Roster(
            config,
            self.sio,
            self.node_id,
            self.table,
            self.presence,
            self.admission,
            self.pairing,
            self.audience,
            self._tasks,
        )
        self._runner: web.AppRunner | None = None
        self._unlisten: Callable[[], None] | None = None
        self._listening = False
        self.port = config.port
        self.sio.on("connect", self.roster.on_connect)
        self.sio.on("disconnect", self.roster.on_disconnect)
        self.sio.on("send", self.relay.on_send)
        self.sio.on("guests", self.audience.on_guests)
        self.sio.on("pair", self.pairing.pair)
        self.sio.on("pair_request", self.pairing.pair_request)

    @property
    def name(self) -> str:
        return "gateway"

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        if self._redis is not None:
            try:
                async with asyncio.timeout(REDIS_SUBSCRIBE_SECONDS):
                    await self._redis.ready(self.sio)
            except TimeoutError:
                where = _without_password(self.config.redis_url)
                raise RuntimeError(f"could not subscribe to Redis at {where}") from None
        await self.presence.start()
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        self.port = self.origins.port = int(self._runner.addresses[0][1])
        self._listening = self.roster.open = True
        self._unlisten = self.access.listen(self.roster.on_access)
        log.info(
            "gateway %s listening on http://%s:%d%s",
            self.node_id,
            self.config.host,
            self.port,
            " (Redis scale-out)" if self.config.redis_url else "",
        )

    async def stop(self) -> None:
        """Tell every socket the node is going away, disconnect them, and close."""
        if self._runner is None:
            return
        self._listening = False
        self.roster.close()
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        notice = GoingAway(reason="gateway stopping").model_dump()
        sids = [*self.table.sids(), *self.pairing.sids()]
        for sid in sids:
            await self.sio.emit("going_away", notice, to=sid, ignore_queue=True)
        for sid in sids:
            await self.sio.disconnect(sid, ignore_queue=True)
        if self.config.redis_url:
            # Hubs on other nodes must hear that this node's devices are gone.
            try:
                await self.roster.push_devices()
            except Exception as exc:
                log.warning("could not tell other nodes about departed devices: %s", exc)
        await self.mcp_http.close()
        await self.openai_api.close()
        await self._tasks.close()
        await self.fan_out.close_fan_out()
        await close_transports(self.sio)
        await self.sio.shutdown()
        if self._redis is not None:
            await self._redis.close()
        await self.presence.stop()
        await self._runner.cleanup()
        self._runner = None
        log.info("gateway %s stopped", self.node_id)

    # -- introspection ----------------------------------------------------------------------

    async def connected_devices(self) -> list[DeviceInfo]:
        """Every connected device (all nodes, with Redis), for `ctl status` / `ctl devices`."""
        return await self.presence.devices()

    def local_devices(self) -> list[DeviceInfo]:
        """Devices with sockets on this node, synchronously (all of them without Redis)."""
        return self.table.devices()

    def probes(self) -> dict[str, Probe]:
        return {"gateway": self._probe}

    def _probe(self) -> SubsystemHealth:
        if not self._listening:
            return SubsystemHealth(name="gateway", status="down", detail="not listening")
        return SubsystemHealth(
            name="gateway",
            status="ok",
            detail=(
                f"listening on {self.config.host}:{self.port}; {len(self.table)} sockets"
                f" ({self.table.hubs()} hub) on node {self.node_id}"
                + ("; Redis scale-out" if self.config.redis_url else "")
            ),
        )

    def _status(self) -> GatewayStatus:
        return GatewayStatus(
            node=self.node_id,
            listening=self._listening,
            redis=bool(self.config.redis_url),
            sockets=len(self.table),
            pairing_sockets=len(self.pairing),
            health=self.health.report(),
        )

    def _local_url(self) -> str:
        """Where this node's own clients (the OpenAI endpoint's devices) reach it."""
        host = self.config.host
        host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    # -- sending ----------------------------------------------------------------------------

    async def _to_sid(self, event: str, data: object, sid: str) -> None:
        await self.sio.emit(event, data, to=sid, ignore_queue=True)

    async def _to_room(self, event: str, data: object, room: str) -> None:
        await self.sio.emit(event, data, room=room)


def _without_password(url: str | None) -> str:
    parts = urlsplit(url or "")
    if parts.password is None:
        return url or ""
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":****@")))
