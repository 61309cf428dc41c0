"""The window's file server: only the UI's files, always with the security headers."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop.static import INDEX, WebFiles


class Answer:
    def __init__(self) -> None:
        self.status = ""
        self.headers: dict[str, str] = {}

    def __call__(self, status: str, headers: list[tuple[str, str]]) -> None:
        self.status = status
        self.headers = dict(headers)


@pytest.fixture
def web(tmp_path: Path) -> Path:
    root = tmp_path / "web"
    (root / "node_modules" / "marked" / "lib").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>ui</title>")
    (root / "app.js").write_text("export {};")
    (root / "node_modules" / "marked" / "lib" / "marked.esm.js").write_text("export {};")
    (root / "node_modules" / "marked" / "package.json").write_text("{}")
    (root / ".env").write_text("SECRET=1")
    (tmp_path / "secret.js").write_text("leak")
    return root


def get(app: WebFiles, path: str, method: str = "GET") -> tuple[Answer, bytes]:
    answer = Answer()
    body = b"".join(app({"REQUEST_METHOD": method, "PATH_INFO": path}, answer))
    return answer, body


def test_serves_the_ui_with_a_content_security_policy(web: Path) -> None:
    app = WebFiles(web)
    answer, body = get(app, "/index.html")
    assert answer.status == "200 OK"
    assert body == b"<!doctype html><title>ui</title>"
    assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = answer.headers["Content-Security-Policy"]
    assert "script-src 'self' 'unsafe-eval';" in csp
    assert "unsafe-inline" not in csp
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    answer, _ = get(app, "/node_modules/marked/lib/marked.esm.js")
    assert answer.headers["Content-Type"] == "text/javascript; charset=utf-8"


def test_root_redirects_to_the_desktop_flavour_of_the_page(web: Path) -> None:
    answer, _ = get(WebFiles(web), "/")
    assert answer.status == "302 Found"
    assert answer.headers["Location"] == INDEX


@pytest.mark.parametrize(
    "path",
    [
        "/.env",
        "/../secret.js",
        "/node_modules/../../secret.js",
        "/node_modules/marked/package.json",
        "/node_modules/marked/../../../secret.js",
        "/missing.js",
        "/node_modules/",
    ],
)
def test_nothing_else_is_served(web: Path, path: str) -> None:
    answer, body = get(WebFiles(web), path)
    assert answer.status == "404 Not Found"
    assert b"SECRET" not in body
    assert b"leak" not in body


def test_only_reads_are_allowed(web: Path) -> None:
    answer, _ = get(WebFiles(web), "/index.html", method="POST")
    assert answer.status == "405 Method Not Allowed"
