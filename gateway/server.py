"""GatewayServer: the Socket.IO relay between hub devices and client devices.

- Auth is decided in the Socket.IO connect handler and fails closed: a hub presents the
  gateway token, a client its device id and token (hashed in the AccessStore); a socket with
  no credentials (`{role: "pair"}` or none) is a *pairing* socket that can only pair.
- `send` frames are checked (rate, size, shape, `from`, action for the role, target) and
  relayed as `receive` to every socket of the target device; failures get `send_error`.
- Duplicate ids: a client device may hold up to `max_connections_per_device` sockets at once
  (browser tabs share a device), all of which receive its frames; a hub id already connected
  anywhere is refused, so two hubs never split one conversation.
- With `redis_url` the node runs on python-socketio's Redis manager and shares presence in
  Redis; it subscribes at start, before any client connects, so no early frame is lost.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import NoReturn, cast
from urllib.parse import urlsplit, urlunsplit

import socketio
from aiohttp import web
from pydantic import JsonValue, ValidationError
from pydantic_core import to_json

from gateway.config import GatewayConfig
from gateway.packet import JsonPacket
from gateway.presence import LocalPresence, Presence, RedisPresence
from gateway.protocol import (
    ALLOWED_ACTIONS,
    AUTH_ADAPTER,
    FRAME_ADAPTER,
    ClientAuth,
    DeviceInfo,
    Devices,
    ErrorCode,
    GoingAway,
    HubAuth,
    PairRequest,
    PairResult,
    PairWithCode,
    Registered,
    ResponseError,
    Role,
    SendError,
)
from gateway.ratelimit import TokenBucket
from gateway.static import WebClientFiles
from hub.access import AccessError, AccessStore, Decision, DeviceRecord
from hub.health import HealthRegistry, HealthReport, SubsystemHealth
from hub.wire import WireModel

log = logging.getLogger("agenthub.gateway")

DEVICES_PUSH_DELAY = 0.1
HUBS_ROOM = "hubs"
CLIENTS_ROOM = "clients"


def device_room(device_id: str) -> str:
    return f"d:{device_id}"


class Refused(WireModel):
    """Why a connection was refused (the Socket.IO `connect_error` data)."""

    code: str
    message: str


class GatewayStatus(WireModel):
    """`GET /status`: counts only, never device ids or labels (the port may be public)."""

    node: str
    listening: bool
    redis: bool
    sockets: int
    pairing_sockets: int
    health: HealthReport


@dataclass(slots=True)
class _Conn:
    device_id: str
    role: Role
    label: str
    connected_at: float = field(default_factory=time.time)


@dataclass(slots=True)
class _Pairing:
    bucket: TokenBucket
    address: str
    waiting_for: str | None = None


class GatewayServer:
    """The gateway service. `app` is its aiohttp Application; add routes before `start()`."""

    def __init__(self, config: GatewayConfig, access: AccessStore, health: HealthRegistry) -> None:
        self.config = config
        self.access = access
        self.health = health
        self.node_id = f"gw-{secrets.token_hex(4)}"
        manager: socketio.AsyncManager | None = None
        if config.redis_url:
            manager = socketio.AsyncRedisManager(
                config.redis_url, channel=f"{config.redis_prefix}:sio"
            )
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp",
            client_manager=manager,
            cors_allowed_origins=self._origin_allowed,
            # Frames up to 4x the limit reach the handler and get TOO_LARGE; past that the
            # transport itself is closed (parsing them would be the attack).
            max_http_buffer_size=config.max_frame_bytes * 4 + 65536,
            ping_interval=config.ping_interval,
            ping_timeout=config.ping_timeout,
            # One socket's frames are handled one after another, in arrival order: a hub's
            # stream frames keep their order even when a handler waits on Redis.
            async_handlers=False,
            serializer=JsonPacket,
            logger=False,
            engineio_logger=False,
        )
        self.app = web.Application(client_max_size=config.max_frame_bytes * 4 + 65536)
        self.sio.attach(self.app)
        WebClientFiles(config.web_root).add_routes(self.app)
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/status", self._status)
        self.presence: Presence = (
            RedisPresence(config.redis_url, config.redis_prefix, self.node_id)
            if config.redis_url
            else LocalPresence()
        )
        self._conns: dict[str, _Conn] = {}
        self._local_sids: dict[str, set[str]] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._pairing: dict[str, _Pairing] = {}
        self._waiting: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._devices_push: asyncio.TimerHandle | None = None
        self._runner: web.AppRunner | None = None
        self._unlisten: Callable[[], None] | None = None
        self._listening = False
        self.port = config.port
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("send", self._on_send)
        self.sio.on("pair", self._on_pair)
        self.sio.on("pair_request", self._on_pair_request)

    @property
    def name(self) -> str:
        return "gateway"

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        if self.config.redis_url:
            await self._subscribe_redis()
        await self.presence.start()
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        address = self._runner.addresses[0]
        self.port = int(address[1])
        self._listening = True
        self._unlisten = self.access.listen(self._on_access)
        self.health.register("gateway", self._probe)
        log.info(
            "gateway %s listening on http://%s:%d%s",
            self.node_id,
            self.config.host,
            self.port,
            " (Redis scale-out)" if self.config.redis_url else "",
        )

    async def _subscribe_redis(self) -> None:
        # python-socketio subscribes lazily, on the first connection; a frame published to
        # this node before then would be lost, so subscribe now and wait until it took.
        manager = cast(socketio.AsyncRedisManager, self.sio.manager)
        if not self.sio.manager_initialized:
            self.sio.manager_initialized = True
            manager.initialize()
        for _ in range(200):
            pubsub = getattr(manager, "pubsub", None)
            if pubsub is not None and pubsub.subscribed:
                return
            await asyncio.sleep(0.025)
        raise RuntimeError(
            f"could not subscribe to Redis at {_without_password(self.config.redis_url)}"
        )

    async def stop(self) -> None:
        """Tell every socket the node is going away, disconnect them, and close."""
        if self._runner is None:
            return
        self._listening = False
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        if self._devices_push is not None:
            self._devices_push.cancel()
        notice = GoingAway(reason="gateway stopping").model_dump()
        sids = [*self._conns, *self._pairing]
        for sid in sids:
            await self.sio.emit("going_away", notice, to=sid, ignore_queue=True)
        for sid in sids:
            await self.sio.disconnect(sid, ignore_queue=True)
        if self.config.redis_url:
            # Hubs on other nodes must hear that this node's devices are gone.
            try:
                await self._push_devices()
            except Exception as exc:
                log.warning("could not tell other nodes about departed devices: %s", exc)
        for task in list(self._tasks):
            task.cancel()
        # Close the transports too, so the HTTP server has no open websocket to wait for
        # (without waiting for their queues: a peer that already left never drains its own).
        for socket in list(self.sio.eio.sockets.values()):
            await socket.close(wait=False)
            socket.queue.put_nowait(None)  # ends the transport's writer, which closes it
        await self.sio.shutdown()
        await self._stop_redis_listener()
        await self.presence.stop()
        await self._runner.cleanup()
        self._runner = None
        log.info("gateway %s stopped", self.node_id)

    async def _stop_redis_listener(self) -> None:
        thread = getattr(self.sio.manager, "thread", None)
        if isinstance(thread, asyncio.Task):
            thread.cancel()
            await asyncio.gather(thread, return_exceptions=True)
        redis = getattr(self.sio.manager, "redis", None)
        if redis is not None:
            await redis.aclose()

    # -- introspection ----------------------------------------------------------------------

    async def connected_devices(self) -> list[DeviceInfo]:
        """Every connected device (all nodes, with Redis), for `ctl status` / `ctl devices`."""
        return await self.presence.devices()

    def local_devices(self) -> list[DeviceInfo]:
        """Devices with sockets on this node, synchronously (all of them without Redis)."""
        devices: list[DeviceInfo] = []
        for device_id, sids in sorted(self._local_sids.items()):
            conn = self._conns[next(iter(sids))]
            devices.append(
                DeviceInfo(
                    device_id=device_id, role=conn.role, label=conn.label, connections=len(sids)
                )
            )
        return devices

    def _probe(self) -> SubsystemHealth:
        if not self._listening:
            return SubsystemHealth(name="gateway", status="down", detail="not listening")
        hubs = sum(1 for c in self._conns.values() if c.role == "hub")
        return SubsystemHealth(
            name="gateway",
            status="ok",
            detail=(
                f"listening on {self.config.host}:{self.port}; {len(self._conns)} sockets"
                f" ({hubs} hub) on node {self.node_id}"
                + ("; Redis scale-out" if self.config.redis_url else "")
            ),
        )

    async def _healthz(self, request: web.Request) -> web.Response:
        report = self.health.report()
        return web.json_response(
            report.model_dump(mode="json"), status=200 if report.healthy else 503
        )

    async def _status(self, request: web.Request) -> web.Response:
        status = GatewayStatus(
            node=self.node_id,
            listening=self._listening,
            redis=bool(self.config.redis_url),
            sockets=len(self._conns),
            pairing_sockets=len(self._pairing),
            health=self.health.report(),
        )
        return web.json_response(status.model_dump(mode="json"))

    def _origin_allowed(self, origin: str | None, environ: dict[str, str]) -> bool:
        own = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}"
        return origin == own or origin in self.config.cors_allowed_origins

    # -- connect / disconnect ---------------------------------------------------------------

    async def _on_connect(self, sid: str, environ: dict[str, object], auth: object) -> None:
        try:
            creds = AUTH_ADAPTER.validate_python(auth if auth is not None else {"role": "pair"})
        except ValidationError:
            _refuse("UNAUTHORIZED", "malformed credentials")
        if isinstance(creds, HubAuth):
            expected = self.config.gateway_token.get_secret_value().encode()
            if not hmac.compare_digest(creds.token.encode(), expected):
                log.warning("hub connection refused: wrong gateway token")
                _refuse("UNAUTHORIZED", "wrong gateway token")
            if await self.presence.lookup(creds.device_id) is not None:
                log.warning("hub %s refused: already connected", creds.device_id)
                _refuse("DUPLICATE_DEVICE", f"device {creds.device_id} is already connected")
            await self._register(sid, creds.device_id, "hub", "hub")
        elif isinstance(creds, ClientAuth):
            if not self.access.verify_device(creds.device_id, creds.token):
                log.info("client connection refused: unknown device or wrong token")
                _refuse("UNAUTHORIZED", "unknown device or wrong token; pair again")
            existing = await self.presence.lookup(creds.device_id)
            if existing is not None and existing.role != "client":
                _refuse("DUPLICATE_DEVICE", f"device id {creds.device_id} is taken")
            if existing is not None and existing.connections >= (
                self.config.max_connections_per_device
            ):
                _refuse("TOO_MANY_CONNECTIONS", "this device has too many open connections")
            await self._register(sid, creds.device_id, "client", self._label(creds.device_id))
        else:
            address = _peer_address(environ)
            same_address = sum(1 for p in self._pairing.values() if p.address == address)
            if (
                len(self._pairing) >= self.config.max_pairing_sockets
                or same_address >= self.config.max_pairing_sockets_per_address
            ):
                _refuse("RATE_LIMITED", "too many devices are pairing; try again later")
            per_minute = self.config.pair_attempts_per_minute
            self._pairing[sid] = _Pairing(TokenBucket(per_minute / 60.0, per_minute), address)
            self._after_connect(sid, Registered(device_id=None, role="pairing", node=self.node_id))

    def _label(self, device_id: str) -> str:
        return next((d.label for d in self.access.devices() if d.device_id == device_id), "")

    async def _register(self, sid: str, device_id: str, role: Role, label: str) -> None:
        self._conns[sid] = _Conn(device_id, role, label)
        self._local_sids.setdefault(device_id, set()).add(sid)
        await self.sio.enter_room(sid, device_room(device_id))
        await self.sio.enter_room(sid, HUBS_ROOM if role == "hub" else CLIENTS_ROOM)
        try:
            await self.presence.add(device_id, role, label, sid)
        except Exception:
            self._forget(sid)
            log.exception("presence store failed; refusing %s", device_id)
            _refuse("UNAVAILABLE", "the gateway cannot record presence right now")
        if device_id not in self._buckets:
            if role == "client":
                self._buckets[device_id] = TokenBucket(
                    self.config.client_rate, self.config.client_burst
                )
            elif self.config.hub_rate is not None:
                self._buckets[device_id] = TokenBucket(self.config.hub_rate, self.config.hub_burst)
        log.info("%s %s connected (node %s)", role, device_id, self.node_id)
        hubs = [d.device_id for d in await self.presence.devices() if d.role == "hub"]
        self._after_connect(
            sid, Registered(device_id=device_id, role=role, node=self.node_id, hubs=hubs)
        )
        self._schedule_devices_push()

    def _after_connect(self, sid: str, registered: Registered) -> None:
        # Runs once the handler returned and the CONNECT packet is queued ahead of it.
        self._spawn(self.sio.emit("registered", registered.model_dump(), to=sid))

    def _forget(self, sid: str) -> _Conn | None:
        conn = self._conns.pop(sid, None)
        if conn is not None:
            sids = self._local_sids.get(conn.device_id)
            if sids is not None:
                sids.discard(sid)
                if not sids:
                    del self._local_sids[conn.device_id]
                    self._buckets.pop(conn.device_id, None)
        return conn

    async def _on_disconnect(self, sid: str, reason: object = None) -> None:
        pairing = self._pairing.pop(sid, None)
        if pairing is not None and pairing.waiting_for is not None:
            self._waiting.pop(pairing.waiting_for, None)
        conn = self._forget(sid)
        if conn is None:
            return
        log.info("%s %s disconnected (%s)", conn.role, conn.device_id, reason)
        try:
            await self.presence.remove(conn.device_id, sid)
        except Exception as exc:
            log.warning("presence store failed removing %s: %s", conn.device_id, exc)
        if self._listening:
            self._schedule_devices_push()

    # -- presence pushes --------------------------------------------------------------------

    def _schedule_devices_push(self) -> None:
        # Debounced: a burst of connects costs one push, not one per socket.
        if self._devices_push is None and self._listening:
            self._devices_push = asyncio.get_running_loop().call_later(
                DEVICES_PUSH_DELAY, lambda: self._spawn(self._push_devices())
            )

    async def _push_devices(self) -> None:
        self._devices_push = None
        devices = await self.presence.devices()
        await self.sio.emit("devices", Devices(devices=devices).model_dump(), room=HUBS_ROOM)
        hubs = [d for d in devices if d.role == "hub"]
        # Clients learn only which hubs are online (to address them and to resync when one
        # comes back); they never see other devices.
        await self.sio.emit("devices", Devices(devices=hubs).model_dump(), room=CLIENTS_ROOM)

    # -- frames -----------------------------------------------------------------------------

    async def _on_send(self, sid: str, data: object = None) -> None:
        message_id = _frame_id(data)
        conn = self._conns.get(sid)
        if conn is None:
            await self._send_error(sid, message_id, "NOT_REGISTERED", "pair this device first")
            return
        bucket = self._buckets.get(conn.device_id)
        if bucket is not None and not bucket.take():
            await self._send_error(
                sid, message_id, "RATE_LIMITED", "too many frames; slow down and resend"
            )
            return
        if len(to_json(data)) > self.config.max_frame_bytes:
            await self._send_error(
                sid,
                message_id,
                "TOO_LARGE",
                f"frame is larger than {self.config.max_frame_bytes} bytes",
            )
            return
        try:
            frame = FRAME_ADAPTER.validate_python(data)
        except ValidationError as exc:
            await self._send_error(sid, message_id, "INVALID_MESSAGE", _explain(exc))
            return
        if frame.sender != conn.device_id:
            await self._send_error(
                sid, message_id, "UNAUTHORIZED", "`from` must be this socket's device id"
            )
            return
        if frame.action not in ALLOWED_ACTIONS[conn.role]:
            await self._send_error(
                sid, message_id, "UNAUTHORIZED", f"a {conn.role} may not send {frame.action}"
            )
            return
        target = await self._lookup(frame.to)
        if target is None:
            await self._send_error(
                sid, message_id, "DEVICE_NOT_FOUND", f"device {frame.to} is not connected"
            )
            return
        if conn.role == "client" and target.role != "hub":
            await self._send_error(
                sid, message_id, "UNAUTHORIZED", "client devices may only address a hub"
            )
            return
        await self.sio.emit("receive", data, room=device_room(frame.to))

    async def _lookup(self, device_id: str) -> DeviceInfo | None:
        sids = self._local_sids.get(device_id)
        if sids:
            conn = self._conns[next(iter(sids))]
            return DeviceInfo(device_id=device_id, role=conn.role, label=conn.label)
        if isinstance(self.presence, LocalPresence):
            return None
        return await self.presence.lookup(device_id)

    async def _send_error(
        self, sid: str, message_id: str | None, code: ErrorCode, message: str
    ) -> None:
        error = SendError(message_id=message_id, code=code, message=message)
        await self.sio.emit("send_error", error.model_dump(), to=sid, ignore_queue=True)

    # -- pairing ----------------------------------------------------------------------------

    async def _on_pair(self, sid: str, data: object = None) -> JsonValue:
        state = self._pairing.get(sid)
        refusal = self._pairing_refusal(state)
        if refusal is not None:
            return refusal
        try:
            wanted = PairWithCode.model_validate(data)
        except ValidationError as exc:
            return _pair_error("INVALID_MESSAGE", _explain(exc))
        try:
            issued = self.access.redeem_invite(wanted.code, wanted.label or "browser")
        except AccessError as exc:
            log.info("pairing code refused (%s)", exc.code)
            return _pair_error(exc.code, exc.message)
        log.info("device %s paired with an invite code", issued.device_id)
        return PairResult(ok=True, device_id=issued.device_id, token=issued.token).model_dump()

    async def _on_pair_request(self, sid: str, data: object = None) -> JsonValue:
        state = self._pairing.get(sid)
        refusal = self._pairing_refusal(state)
        if refusal is not None:
            return refusal
        assert state is not None
        try:
            wanted = PairRequest.model_validate(data if data is not None else {})
        except ValidationError as exc:
            return _pair_error("INVALID_MESSAGE", _explain(exc))
        device_id = state.waiting_for or f"web-{secrets.token_hex(4)}"
        try:
            pending = self.access.request("device", device_id, wanted.label or "browser")
        except AccessError as exc:
            return _pair_error(exc.code, exc.message)
        state.waiting_for = device_id
        self._waiting[device_id] = sid
        return PairResult(ok=True, device_id=device_id, request_code=pending.code).model_dump()

    def _pairing_refusal(self, state: _Pairing | None) -> JsonValue:
        if state is None:
            return _pair_error("NOT_PAIRING", "this socket is already registered")
        if not state.bucket.take():
            return _pair_error("RATE_LIMITED", "too many pairing attempts; wait a minute")
        return None

    def _on_access(self, what: str, payload: Decision | DeviceRecord) -> None:
        if what == "decided" and isinstance(payload, Decision):
            if payload.request.kind != "device":
                return
            sid = self._waiting.pop(payload.request.subject, None)
            if sid is None:
                return
            if payload.approved and payload.issued is not None:
                result = PairResult(
                    ok=True, device_id=payload.issued.device_id, token=payload.issued.token
                )
                self._spawn(self.sio.emit("paired", result.model_dump(), to=sid))
            else:
                result = PairResult(
                    ok=False,
                    error=ResponseError(code="DENIED", message="the owner denied this device"),
                )
                self._spawn(self.sio.emit("pair_denied", result.model_dump(), to=sid))
        elif what == "revoked" and isinstance(payload, DeviceRecord):
            self._spawn(self._disconnect_device(payload.device_id))

    async def _disconnect_device(self, device_id: str) -> None:
        sids = set(self._local_sids.get(device_id, set()))
        try:
            sids.update(await self.presence.sids(device_id))
        except Exception as exc:
            log.warning("presence lookup failed while revoking %s: %s", device_id, exc)
        for sid in sids:
            await self.sio.disconnect(sid)
        log.info("revoked device %s: %d sockets disconnected", device_id, len(sids))

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("gateway background task failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _peer_address(environ: dict[str, object]) -> str:
    """The socket's remote address (behind a reverse proxy, the proxy's)."""
    request = environ.get("aiohttp.request")
    remote = request.remote if isinstance(request, web.BaseRequest) else None
    return remote or "unknown"


def _without_password(url: str | None) -> str:
    parts = urlsplit(url or "")
    if parts.password is None:
        return url or ""
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":****@")))


def _refuse(code: str, message: str) -> NoReturn:
    # Socket.IO clients see `message` as the error text and `data` as {code, message}.
    raise socketio.exceptions.ConnectionRefusedError(
        f"{code}: {message}", Refused(code=code, message=message).model_dump()
    )


def _pair_error(code: str, message: str) -> JsonValue:
    return PairResult(ok=False, error=ResponseError(code=code, message=message)).model_dump()


def _frame_id(data: object) -> str | None:
    if isinstance(data, dict):
        value = data.get("id")
        if isinstance(value, str) and len(value) <= 128:
            return value
    return None


def _explain(exc: ValidationError) -> str:
    """One line naming the first bad field, e.g. `payload.agentId: Field required`."""
    first = exc.errors(include_url=False)[0]
    if first["type"] == "union_tag_invalid":
        return "unknown action (expected message, stream, request or response)"
    if first["type"] == "union_tag_not_found":
        return "missing action (expected message, stream, request or response)"
    if first["type"] in ("model_type", "model_attributes_type") and not first["loc"]:
        return "a frame must be a JSON object"
    where = ".".join(str(part) for part in first["loc"]) or "frame"
    return f"{where}: {first['msg']}"
