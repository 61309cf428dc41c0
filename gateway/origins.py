"""Which browser origins and Host headers the gateway answers.

Allowed origins come from configuration, never from the request: the public URL (where
browsers reach this gateway, e.g. through a reverse proxy), `cors_allowed_origins`, and the
loopback addresses on the gateway's own port. A request without an `Origin` (not a browser)
is not an origin check's business. A loopback-bound gateway also refuses any Host header that
is not one of its own names: a foreign name that resolves to 127.0.0.1 is DNS rebinding.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from gateway.config import GatewayConfig

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
DEFAULT_PORTS = {"http": 80, "https": 443}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _with_port(scheme: str, host: str, port: int | None) -> str:
    if port is None or port == DEFAULT_PORTS.get(scheme):
        return host
    return f"{host}:{port}"


class OriginPolicy:
    """`port` is the port the gateway listens on (known once it started)."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.port = config.port

    def origins(self) -> set[str]:
        allowed = {f"http://{_with_port('http', h, self.port)}" for h in LOOPBACK_HOSTS}
        if self.config.host not in ("", "0.0.0.0", "::") and not is_loopback(self.config.host):
            host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
            allowed.add(f"http://{_with_port('http', host, self.port)}")
        public = self._public()
        if public is not None:
            allowed.add(f"{public[0]}://{public[1]}")
        allowed.update(o.rstrip("/").lower() for o in self.config.cors_allowed_origins)
        return allowed

    def hosts(self) -> set[str]:
        """Host header values a loopback-bound gateway answers."""
        allowed = {_with_port("http", h, self.port) for h in LOOPBACK_HOSTS}
        public = self._public()
        if public is not None:
            allowed.add(public[1])
        return allowed

    def _public(self) -> tuple[str, str] | None:
        if not self.config.public_url:
            return None
        url = urlsplit(self.config.public_url.lower())
        host = f"[{url.hostname}]" if url.hostname and ":" in url.hostname else url.hostname
        return url.scheme, _with_port(url.scheme, host or "", url.port)

    def origin_allowed(self, origin: str | None, environ: object = None) -> bool:
        return origin is None or origin.lower() in self.origins()

    def host_allowed(self, host: str | None) -> bool:
        if not is_loopback(self.config.host):
            return True
        return host is not None and host.lower() in self.hosts()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self.host_allowed(request.headers.get("Host")):
            return web.Response(
                status=421,
                text="this gateway does not answer for that host name; open it by its own"
                " address (configure the public URL if it sits behind a proxy)\n",
            )
        return await handler(request)
