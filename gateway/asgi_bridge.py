"""One aiohttp request served by an ASGI callable (the `mcp` SDK's streamable-HTTP session
manager), so the gateway serves it on its own port without a second HTTP server.

`receive` gives the request body, then waits: it answers `http.disconnect` once the response
is complete or the client has gone (servers of server-sent events listen for it while they
stream). `send` writes the response as it comes, flushing each body part.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aiohttp import web

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

# How often a waiting `receive` looks whether the client is still connected.
GONE_POLL_SECONDS = 1.0


class AsgiExchange:
    """The ASGI side of one aiohttp request."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response: web.StreamResponse | None = None
        self._body_sent = False
        self._done = asyncio.Event()

    def scope(self) -> dict[str, Any]:
        request = self.request
        peer = request.transport.get_extra_info("peername") if request.transport else None
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": f"{request.version.major}.{request.version.minor}",
            "method": request.method,
            "scheme": request.scheme,
            "path": request.path,
            "raw_path": request.raw_path.split("?", 1)[0].encode(),
            "query_string": request.query_string.encode(),
            "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.raw_headers],
            "client": tuple(peer[:2]) if isinstance(peer, tuple) else None,
            "server": (request.url.host, request.url.port),
        }

    async def receive(self) -> Message:
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": await self.request.read(), "more_body": False}
        while not self._done.is_set() and not self._client_gone():
            try:
                async with asyncio.timeout(GONE_POLL_SECONDS):
                    await self._done.wait()
            except TimeoutError:
                continue
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            response = web.StreamResponse(status=message["status"])
            for name, value in message.get("headers", ()):
                response.headers.add(name.decode("latin-1"), value.decode("latin-1"))
            self.response = response
            await response.prepare(self.request)
        elif kind == "http.response.body":
            if self.response is None:
                raise RuntimeError("ASGI body before http.response.start")
            body = message.get("body", b"")
            if body:
                await self.response.write(body)
            if not message.get("more_body", False):
                await self.response.write_eof()
                self._done.set()

    def _client_gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()


async def serve_asgi(app: Asgi, request: web.Request) -> web.StreamResponse:
    """Run `app` for `request` and return the response it wrote."""
    exchange = AsgiExchange(request)
    await app(exchange.scope(), exchange.receive, exchange.send)
    if exchange.response is None:
        return web.Response(status=500, text="the MCP endpoint wrote no response")
    return exchange.response
