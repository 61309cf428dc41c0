"""Serving the web client: the files of web/ and an allow-list of vendor modules.

Only top-level files of web/ with a known extension are served, and from web/node_modules
only the exact module files the client imports. Every response carries a strict Content
Security Policy: scripts from this origin only, no inline script, no plugins, no framing,
so even a sanitiser bug could not run injected markup.
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

VENDOR_FILES = (
    "node_modules/marked/lib/marked.esm.js",
    "node_modules/dompurify/dist/purify.es.mjs",
    "node_modules/socket.io-client/dist/socket.io.esm.min.js",
)
_CLIENT_FILE = re.compile(r"^[a-z0-9][a-z0-9-]*\.(html|js|css|svg|png|ico)$")
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class WebClientFiles:
    """aiohttp handlers for `/`, `/<file>` and the vendor allow-list under web_root."""

    def __init__(self, web_root: Path) -> None:
        self.root = web_root.resolve()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.index)
        for vendor in VENDOR_FILES:
            app.router.add_get(f"/{vendor}", self.vendor)
        app.router.add_get(r"/{name:[a-z0-9][a-z0-9-]*\.[a-z]+}", self.client_file)

    async def index(self, request: web.Request) -> web.StreamResponse:
        return self._file(self.root / "index.html")

    async def client_file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if not _CLIENT_FILE.match(name):
            raise web.HTTPNotFound()
        return self._file(self.root / name)

    async def vendor(self, request: web.Request) -> web.StreamResponse:
        return self._file(self.root / request.path.lstrip("/"))

    def _file(self, path: Path) -> web.StreamResponse:
        if not path.is_file():
            raise web.HTTPNotFound(
                text="not found (the web client's npm packages install with `make setup`)"
            )
        response = web.FileResponse(path, headers=SECURITY_HEADERS)
        response.content_type = _TYPES.get(path.suffix, "application/octet-stream").split(";")[0]
        if path.suffix in (".html", ".js", ".mjs", ".css"):
            response.charset = "utf-8"
        return response
