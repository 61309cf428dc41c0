"""The gateway's HTTP side: the web client files, the vendor allow-list, /healthz, /status."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from gateway.static import VENDOR_FILES
from tests.test_gateway_support import GATEWAY_TOKEN, running_stack


async def test_web_client_is_served_with_a_strict_policy(data_dir: Path) -> None:
    async with running_stack(data_dir) as stack, aiohttp.ClientSession() as http:
        async with http.get(f"{stack.url}/") as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            assert "script-src 'self'" in response.headers["Content-Security-Policy"]
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert '<script type="module" src="app.js">' in await response.text()
        for name in ("app.js", "ui.js", "transport-gateway.js", "style.css"):
            async with http.get(f"{stack.url}/{name}") as response:
                assert response.status == 200, name
        for vendor in VENDOR_FILES:
            async with http.get(f"{stack.url}/{vendor}") as response:
                assert response.status == 200, vendor
                assert response.content_type == "text/javascript"
        for hidden in (
            "/package.json",
            "/node_modules/marked/package.json",
            "/node_modules/socket.io-client/dist/socket.io.js",
            "/../pyproject.toml",
            "/%2e%2e/pyproject.toml",
        ):
            async with http.get(f"{stack.url}{hidden}") as response:
                assert response.status == 404, hidden


async def test_healthz_reports_each_subsystem_and_status_reveals_no_ids(data_dir: Path) -> None:
    async with running_stack(data_dir) as stack, aiohttp.ClientSession() as http:
        async with http.get(f"{stack.url}/healthz") as response:
            assert response.status == 200
            body = await response.json()
        assert body["status"] == "ok"
        assert {s["name"] for s in body["subsystems"]} == {"gateway", "hub_link", "model"}
        async with http.get(f"{stack.url}/status") as response:
            status = await response.json()
            text = await response.text()
        assert (status["sockets"], status["listening"], status["redis"]) == (1, True, False)
        assert GATEWAY_TOKEN not in text
        await stack.link.stop()
        async with http.get(f"{stack.url}/healthz") as response:
            assert response.status == 503
            body = await response.json()
        link = next(s for s in body["subsystems"] if s["name"] == "hub_link")
        assert link["status"] == "degraded"
