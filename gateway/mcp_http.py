"""`/mcp` on the gateway port: the hub's MCP tools (`hub.mcp_tools`) over streamable HTTP, for
MCP hosts elsewhere (docs/api.md).

`Authorization: Bearer <device token>` on every request (401 without one, or with an unknown
or revoked token); each tool call then acts as that device, through its connection to this
gateway (`gateway.api_device`, shared with the OpenAI endpoint), so the hub's rules for that
device apply and the hub may run in another process. `send_message` streams the reply as
progress notifications while it grows.

The `mcp` SDK's session manager is an ASGI app; `gateway.asgi_bridge` drives it from the
aiohttp handler. The SDK is imported, and the manager started, on the first request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import web
from pydantic import JsonValue, ValidationError

from gateway.api_device import ApiDevice, ApiDevices, bearer_device
from gateway.asgi_bridge import Asgi, serve_asgi
from hub.access import AccessStore
from hub.errors import CodedError
from hub.requests.messages import SendAnswer
from hub.run_watch import ReplyText

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context

    from hub.mcp_tools import HubPort, TextSink

log = logging.getLogger("agenthub.mcp_http")

PATH = "/mcp"
REQUEST_SECONDS = 30.0
UNAUTHORIZED = (
    "missing, unknown or revoked token: send `Authorization: Bearer <token>` with a token "
    "from `agenthub ctl tokens new`"
)


class DevicePort:
    """Requests as one device, through its connection to the gateway."""

    def __init__(self, device: ApiDevice) -> None:
        self.device = device

    async def ask(self, method: str, params: dict[str, JsonValue], *, seconds: float) -> JsonValue:
        return await self.device.request(method, params, seconds=seconds)

    async def send(
        self, params: dict[str, JsonValue], on_text: TextSink, *, seconds: float
    ) -> SendAnswer:
        queued = await self.ask("messages.send", {**params, "wait": False}, seconds=REQUEST_SECONDS)
        try:
            answer = SendAnswer.model_validate(queued)
        except ValidationError:
            raise CodedError("the hub answered something unexpected", "bad_answer") from None
        stream = self.device.claim(answer.run_id)
        reply = ReplyText()
        outcome: dict[str, JsonValue] = {}
        try:
            async with asyncio.timeout(seconds):
                while "status" not in outcome:
                    event = (await stream.next()).event
                    if delta := reply.take(event):
                        await on_text(delta)
                    kind = event.get("type")
                    if kind == "agent_error":
                        error = {"code": event.get("code"), "message": event.get("message")}
                        outcome["error"] = error
                    elif kind == "agent_end":
                        outcome["status"] = event.get("status")
        except TimeoutError:
            pass
        finally:
            self.device.release(answer.run_id)
        try:
            return SendAnswer.model_validate(
                {**answer.model_dump(), **outcome, "reply": reply.text}
            )
        except ValidationError:
            raise CodedError("the hub sent an unexpected event", "bad_answer") from None


class McpHttpEndpoint:
    """The route and the SDK's session manager (started on first use, stopped by `close`)."""

    def __init__(self, access: AccessStore, devices: ApiDevices) -> None:
        self._access = access
        self._devices = devices
        self._app: Asgi | None = None
        self._started = asyncio.Lock()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", PATH, self._handle)

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if bearer_device(self._access, request.headers.get("Authorization")) is None:
            return web.json_response(
                {"error": {"message": UNAUTHORIZED, "code": "invalid_api_key"}},
                status=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await serve_asgi(await self._asgi(), request)

    async def _asgi(self) -> Asgi:
        async with self._started:
            if self._app is None:
                ready: asyncio.Future[Asgi] = asyncio.get_running_loop().create_future()
                self._task = asyncio.create_task(self._serve(ready), name="mcp-http")
                self._app = await ready
            return self._app

    async def _serve(self, ready: asyncio.Future[Asgi]) -> None:
        """Run the session manager (its task group lives in this one task) until `close`."""
        from mcp.server.transport_security import TransportSecuritySettings

        from hub.mcp_tools import build_server

        server = build_server(self._open_port)
        # Every request carries a device token, which a page in a browser cannot send: the
        # SDK's Host/Origin check (against DNS rebinding) would only refuse LAN addresses.
        server.streamable_http_app(
            streamable_http_path=PATH,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        manager = server.session_manager
        try:
            async with manager.run():
                ready.set_result(manager.handle_request)
                await self._stop.wait()
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)
            log.exception("the MCP endpoint stopped")

    @contextlib.asynccontextmanager
    async def _open_port(self, ctx: Context) -> AsyncIterator[HubPort]:
        headers = ctx.headers or {}
        authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
        key = bearer_device(self._access, authorization)
        if key is None:
            from mcp.server.mcpserver.exceptions import ToolError

            raise ToolError(UNAUTHORIZED)
        async with self._devices.use(*key) as device:
            yield DevicePort(device)
