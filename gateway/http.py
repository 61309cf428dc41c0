"""The gateway's own HTTP routes besides the web client: `/healthz` and `/status`."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from hub.health import HealthRegistry, HealthReport
from hub.wire import WireModel


class GatewayStatus(WireModel):
    """`GET /status`: counts only, never device ids or labels (the port may be public)."""

    node: str
    listening: bool
    redis: bool
    sockets: int
    pairing_sockets: int
    health: HealthReport


def add_health_routes(
    app: web.Application, health: HealthRegistry, status: Callable[[], GatewayStatus]
) -> None:
    async def healthz(request: web.Request) -> web.Response:
        report = health.report()
        return web.json_response(
            report.model_dump(mode="json"), status=200 if report.healthy else 503
        )

    async def status_route(request: web.Request) -> web.Response:
        return web.json_response(status().model_dump(mode="json"))

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/status", status_route)
