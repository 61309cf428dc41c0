"""The web UI's files for the window, as a small WSGI app that pywebview serves on 127.0.0.1.

Served: the top-level client files of web/ and JavaScript modules under web/node_modules;
nothing else (no directory listings, no dotfiles, no path escaping web/). `/` redirects to
`/index.html?desktop=1`: the flag tells the page's bootstrap to use the desktop transport.

Every answer carries a Content Security Policy like the gateway's: scripts only from this
origin, no inline script, no inline handlers, nothing remote. It allows `eval` ('unsafe-eval')
because pywebview delivers every API answer to the page through `eval`; injected markup still
cannot run, since it would need an inline script or handler first.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Callable, Iterable
from pathlib import Path

StartResponse = Callable[[str, list[tuple[str, str]]], object]
Environ = dict[str, object]

INDEX = "/index.html?desktop=1"
SECURITY_HEADERS = [
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self' 'unsafe-eval'; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-cache"),
]
_CLIENT_FILE = re.compile(r"^/[a-z0-9][a-z0-9-]*\.(html|js|css|svg|png|ico)$")
_VENDOR_FILE = re.compile(r"^/node_modules/[A-Za-z0-9@._/-]+\.m?js$")
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}


class WebFiles:
    """WSGI app: GET of the UI's files under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.vendor_root = self.root / "node_modules"

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = str(environ.get("PATH_INFO", "/"))
        if method not in ("GET", "HEAD"):
            return _answer(start_response, "405 Method Not Allowed", b"")
        if path == "/":
            start_response("302 Found", [("Location", INDEX), *SECURITY_HEADERS])
            return [b""]
        file = self._resolve(path)
        if file is None:
            return _answer(start_response, "404 Not Found", b"not found\n")
        body = file.read_bytes()
        ctype = _TYPES.get(file.suffix) or mimetypes.guess_type(file.name)[0] or "text/plain"
        headers = [("Content-Type", ctype), ("Content-Length", str(len(body))), *SECURITY_HEADERS]
        start_response("200 OK", headers)
        return [b"" if method == "HEAD" else body]

    def _resolve(self, path: str) -> Path | None:
        if _CLIENT_FILE.match(path):
            base = self.root
        elif _VENDOR_FILE.match(path) and "/." not in path:
            base = self.vendor_root
        else:
            return None
        file = (self.root / path.lstrip("/")).resolve()
        if not file.is_relative_to(base) or not file.is_file():
            return None
        return file


def _answer(start_response: StartResponse, status: str, body: bytes) -> list[bytes]:
    start_response(
        status,
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body))), *SECURITY_HEADERS],
    )
    return [body]
