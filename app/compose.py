"""The composition root: the one module that knows every surface and wires them to the hub.

Modes (one per command): `serve` (gateway + hub + web client, Telegram when configured),
`gateway` (the gateway alone), `hub` (the hub alone, linked to a remote gateway), `desktop`
(the hub in-process behind a window; gateway and Telegram when configured). Surfaces that are
not configured are not started, and the start-up banner says which run and which do not.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import ValidationError

from app.config import ConfigError, Settings, env_name
from app.control_handlers import ProcessContext, process_methods
from app.control_server import ControlServer, HubAlreadyRunningError
from app.hub_setup import build_hub
from hub.access import AccessStore
from hub.health import HealthRegistry, SubsystemHealth
from hub.heartbeats import Heartbeats
from hub.hub import Hub
from hub.recovery_service import Recovery
from hub.requests import ConnectedDevice, RequestHost
from hub.schedules import ScheduleError
from hub.schedules_service import Scheduler
from hub.service import Service, attach_probes
from hub.usage import PriceTable
from hub.usage_meter import UsageMeter

if TYPE_CHECKING:
    from channels.manager import ChannelManager
    from desktop.bridge import DesktopBridge
    from desktop.config import DesktopConfig
    from gateway.hub_link import HubLink
    from gateway.server import GatewayServer
    from hub.tools.mcp import McpServers

log = logging.getLogger("agenthub.app")

Mode = Literal["serve", "gateway", "hub", "desktop"]
SERVICE_STOP_TIMEOUT = 10.0


class StartupError(Exception):
    """A part could not start (port taken, another hub running…); exit status 1."""


@dataclass
class Runtime:
    """Everything one `agenthub` process runs, in start order."""

    settings: Settings
    mode: Mode
    access: AccessStore
    health: HealthRegistry
    hub: Hub | None
    services: list[Service] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    not_running: list[str] = field(default_factory=list)
    web_url: str | None = None
    model_line: str | None = None
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    gateway: GatewayServer | None = None
    link: HubLink | None = None
    requests: RequestHost | None = None
    usage: UsageMeter | None = None
    channels: ChannelManager | None = None
    recovery: Recovery | None = None
    # Start-up failures that mean the configuration is wrong (exit 2), not the machine.
    config_errors: tuple[type[Exception], ...] = ()
    _started: list[tuple[Service, Callable[[], None]]] = field(default_factory=list)

    async def connected_devices(self) -> list[ConnectedDevice]:
        """Devices on the gateway this process runs, or those its hub link sees."""
        if self.gateway is not None:
            return [
                ConnectedDevice(device_id=d.device_id, kind=d.role, label=d.label)
                for d in await self.gateway.connected_devices()
            ]
        if self.link is not None:
            return [ConnectedDevice(device_id=d, kind="client") for d in sorted(self.link.clients)]
        return []

    def invite_url(self, code: str) -> str | None:
        return f"{self.web_url}/#pair={code}" if self.web_url else None

    async def start(self) -> None:
        """Start every part in order; on a failure, stop what started and say why."""
        for service in self.services:
            try:
                await service.start()
            except Exception as exc:
                await self.stop_services()
                failure = self._explain(service, exc)
                if failure is exc:
                    raise
                raise failure from exc
            self._started.append((service, attach_probes(self.health, service)))

    def _explain(self, service: Service, exc: Exception) -> Exception:
        if isinstance(exc, HubAlreadyRunningError):
            return StartupError(str(exc))
        if isinstance(exc, self.config_errors):
            return ConfigError(f"{service.name}: {exc}")
        if isinstance(exc, OSError):
            return StartupError(f"{service.name} could not start: {exc}")
        return exc

    async def shutdown(self) -> None:
        """Drain: refuse new input, let the current run finish within the grace period (then
        abort it), deliver what is queued, then stop every part in reverse order."""
        self.health.draining = True
        grace = self.settings.shutdown_grace
        log.info("shutting down (runs get up to %.0fs to finish)", grace)
        if self.hub is not None:
            await self.hub.close(grace=grace)
        await self.stop_services()
        log.info("stopped")

    async def stop_services(self) -> None:
        while self._started:
            service, detach = self._started.pop()
            detach()
            try:
                await asyncio.wait_for(service.stop(), SERVICE_STOP_TIMEOUT)
            except Exception:
                log.exception("%s did not stop cleanly", service.name)


def data_dir_probe(path: Path) -> SubsystemHealth:
    """Writable and with room to append transcripts."""
    if not os.access(path, os.W_OK | os.X_OK):
        return SubsystemHealth(name="data_dir", status="down", detail=f"{path} is not writable")
    free = shutil.disk_usage(path).free
    if free < 16 << 20:
        return SubsystemHealth(
            name="data_dir", status="degraded", detail=f"{path}: only {free >> 20} MiB free"
        )
    return SubsystemHealth(name="data_dir", status="ok", detail=str(path))


def prepare_data_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"AGENTHUB_DATA_DIR: cannot create {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK):
        raise ConfigError(f"AGENTHUB_DATA_DIR: {path} is not writable")


def build(settings: Settings, mode: Mode, *, with_gateway: bool | None = None) -> Runtime:
    """Wire the parts `mode` runs. Raises ConfigError for settings the mode cannot use."""
    prepare_data_dir(settings.data_dir)
    hub: Hub | None = None
    model_line: str | None = None
    mcp: McpServers | None = None
    if mode == "gateway":
        access = AccessStore(settings.data_dir / "access.json")
        health = HealthRegistry()
    else:
        hub, mcp, model_line = build_hub(settings)
        access, health = hub.access, hub.health
    runtime = Runtime(
        settings=settings, mode=mode, access=access, health=health, hub=hub, model_line=model_line
    )
    health.register("data_dir", lambda: data_dir_probe(settings.data_dir))

    requests = RequestHost(
        access=access,
        health=health,
        hub=hub,
        connected_devices=runtime.connected_devices,
        invite_url=runtime.invite_url,
        mode=mode,
    )
    runtime.requests = requests
    control = ControlServer(
        settings.data_dir / "ctl.sock",
        requests,
        process_methods(ProcessContext(mode=mode, request_shutdown=runtime.stop_requested.set)),
    )
    runtime.services.append(control)
    if mcp is not None:
        runtime.services.append(mcp)
        runtime.running.append(f"MCP servers: {', '.join(s.config.name for s in mcp.servers)}")

    run_gateway = mode in ("serve", "gateway") or (mode == "desktop" and bool(with_gateway))
    gateway_token = settings.gateway_token.get_secret_value() if settings.gateway_token else None
    if mode in ("gateway", "hub") and gateway_token is None:
        raise ConfigError(
            f"AGENTHUB_GATEWAY_TOKEN: required for `agenthub {mode}` "
            "(the secret hubs present to the gateway)"
        )
    if run_gateway:
        gateway_token = gateway_token or secrets.token_urlsafe(32)
        _add_gateway(runtime, gateway_token)
    else:
        runtime.not_running.append("gateway (web clients): run `agenthub serve` for it")

    if hub is not None:
        _add_usage(runtime, hub)
        if run_gateway:
            _add_hub_link(runtime, hub, requests, _local_url(settings), gateway_token or "")
        elif mode == "hub":
            if not settings.gateway_url:
                raise ConfigError("AGENTHUB_GATEWAY_URL: required for `agenthub hub`")
            _add_hub_link(runtime, hub, requests, settings.gateway_url, gateway_token or "")
        if settings.telegram_bot_token is not None:
            _add_telegram(runtime, hub)
        else:
            runtime.not_running.append("telegram: set TELEGRAM_BOT_TOKEN to enable it")
        _add_schedules(runtime, hub)
    return runtime


def _add_usage(runtime: Runtime, hub: Hub) -> None:
    settings = runtime.settings
    meter = UsageMeter(
        hub, settings.data_dir / "usage.jsonl", PriceTable(settings.prices), settings.budget
    )
    runtime.usage = meter
    runtime.services.append(meter)
    # After the control socket (which refuses a second hub on this data directory), before
    # any surface that could start a run.
    runtime.recovery = Recovery(hub, settings.data_dir / "runs.jsonl", settings.recovery)
    runtime.services.append(runtime.recovery.closing)


def _add_schedules(runtime: Runtime, hub: Hub) -> None:
    """After the channels, so a schedule's first reply finds them subscribed."""
    settings = runtime.settings
    allowed = {str(user) for user in settings.telegram_allowed_users}
    owners = set(settings.owners or ())

    def chat_known(channel: str, chat_id: str) -> bool:
        return (
            chat_id.startswith("-")  # a group: the Bot API tells whether the bot is in it
            or chat_id in allowed
            or f"{channel}:{chat_id}" in owners
            or hub.access.is_channel_user_approved(channel, chat_id)
        )

    channels = frozenset({"telegram"} if settings.telegram_bot_token is not None else ())
    try:
        scheduler = Scheduler(
            hub,
            settings.data_dir / "schedules.jsonl",
            settings.schedules,
            meter=runtime.usage,
            channels=channels,
            chat_known=chat_known,
        )
    except ScheduleError as exc:
        raise ConfigError(f"schedules: {exc}") from None
    runtime.services.append(scheduler)
    manager = runtime.channels
    deliver = manager.deliver if manager is not None else None
    try:
        heartbeats = Heartbeats(hub, settings.heartbeats, meter=runtime.usage, deliver=deliver)
    except ValueError as exc:
        raise ConfigError(f"heartbeats: {exc}") from None
    runtime.services.append(heartbeats)
    if runtime.recovery is not None:
        runtime.recovery.deliver = deliver
        runtime.services.append(runtime.recovery.resuming)
    if runtime.usage is not None and deliver is not None:
        meter = runtime.usage

        def notify(text: str) -> None:
            log.warning("%s", text)
            route = hub.last_route.route
            if route is not None:
                deliver(route.model_copy(update={"reply_to_message_id": None}), text)

        meter.notify = notify


def _local_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}"


def _add_gateway(runtime: Runtime, token: str) -> None:
    from gateway.config import GatewayConfig
    from gateway.server import GatewayServer

    settings = runtime.settings
    server = GatewayServer(
        GatewayConfig(
            host=settings.host,
            port=settings.port,
            gateway_token=token,
            redis_url=settings.redis_url,
            public_url=settings.public_url,
        ),
        runtime.access,
        runtime.health,
    )
    runtime.services.append(server)
    runtime.gateway = server
    runtime.web_url = _local_url(settings)
    runtime.running.append(f"gateway on {runtime.web_url} (web client at /)")
    if settings.redis_url:
        runtime.running.append("gateway scale-out over Redis")


def _add_hub_link(runtime: Runtime, hub: Hub, requests: RequestHost, url: str, token: str) -> None:
    from gateway.hub_link import HubLink

    runtime.link = HubLink(hub, url, token, requests=requests)
    runtime.services.append(runtime.link)
    runtime.running.append(f"hub linked to gateway {url}")


def _add_telegram(runtime: Runtime, hub: Hub) -> None:
    from channels.manager import ChannelManager
    from channels.telegram import TelegramConfig, TelegramPlugin, TelegramStartError

    settings = runtime.settings
    assert settings.telegram_bot_token is not None
    try:
        config = TelegramConfig(
            bot_token=settings.telegram_bot_token,
            dm_policy=settings.telegram_dm_policy,
            allowed_users=settings.telegram_allowed_users,
            streaming=settings.telegram_streaming,
            send_retry_seconds=settings.telegram_send_retry_seconds,
            group_context_messages=settings.telegram_group_context_messages,
            group_context_chars=settings.telegram_group_context_chars,
            webhook_url=settings.telegram_webhook_url,
            webhook_secret=settings.telegram_webhook_secret,
            **(
                {"api_base_url": settings.telegram_api_base_url}
                if settings.telegram_api_base_url
                else {}
            ),
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        field_name = str(error["loc"][0]) if error["loc"] else ""
        name = env_name(f"telegram_{field_name}") if field_name else "TELEGRAM_*"
        raise ConfigError(f"{name}: {str(error['msg']).removeprefix('Value error, ')}") from None
    plugin = TelegramPlugin(config, hub.access)
    how = "long polling"
    if plugin.webhook_mode:
        if runtime.gateway is None:
            raise ConfigError(
                "AGENTHUB_TELEGRAM_WEBHOOK_URL: webhook mode needs the gateway's HTTP server "
                "in this process (`agenthub serve`, or `desktop --with-gateway`)"
            )
        plugin.attach_webhook(runtime.gateway.app)
        how = f"webhook at {plugin.webhook_path}"
    runtime.config_errors += (TelegramStartError,)
    manager = ChannelManager(hub)
    manager.register(plugin)
    runtime.channels = manager
    runtime.services.append(manager)
    runtime.running.append(f"telegram ({how}, DM policy {settings.telegram_dm_policy})")


def add_desktop(
    runtime: Runtime, config: DesktopConfig, evaluate: Callable[[str], object]
) -> DesktopBridge:
    """The desktop surface: the bridge between the window's page (scripts run by `evaluate`)
    and the hub. It starts and stops with the other parts; the caller runs its push batcher
    beside the window."""
    from desktop.batcher import PushBatcher
    from desktop.bridge import DesktopBridge

    assert runtime.hub is not None and runtime.requests is not None
    batcher = PushBatcher(evaluate, interval=config.push_interval, max_items=config.max_push_items)
    bridge = DesktopBridge(runtime.hub, runtime.requests, batcher, pairing_poll=config.pairing_poll)
    runtime.services.append(bridge)
    runtime.running.append("desktop window")
    return bridge
