"""web_fetch against local servers: readable text, and the SSRF guard on every hop.

The page server listens on 127.0.0.2, which the fetcher is told it may reach (the allow-list
override); a second server on 127.0.0.1 plays the internal service an attacker wants. Nothing
may reach it: not by IP, not by a name resolving to it, not through a redirect.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from hub.tools.web_fetch import FetchRefusedError, WebFetcher
from tests.conftest import free_port

ARTICLE = """<html><head><title>Otters</title></head><body>
<nav>Home | About | Contact</nav>
<article><h1>Sea otters</h1>
<p>Sea otters hold hands while they sleep so that they do not drift apart from each other.</p>
<p>They use stones as tools to crack open shellfish, and keep a favourite stone in a pouch.</p>
</article><footer>Copyright</footer></body></html>"""


@dataclass
class Site:
    host: str
    port: int = 0
    hits: list[str] = field(default_factory=list)
    routes: dict[str, web.Response | str] = field(default_factory=dict)
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(request.path)
        if request.path == "/slow":
            await asyncio.sleep(30)
        if request.path == "/big":
            response = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await response.prepare(request)
            for _ in range(200):
                await response.write(b"z" * 65536)
            return response
        route = self.routes.get(request.path)
        if isinstance(route, str):
            raise web.HTTPFound(route)
        return route or web.Response(text="internal secret", content_type="text/plain")

    async def __aenter__(self) -> Site:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self.runner.setup()
        self.port = free_port()
        await web.TCPSite(self.runner, self.host, self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.fixture
async def internal() -> AsyncIterator[Site]:
    async with Site("127.0.0.1") as site:
        yield site


@pytest.fixture
async def public(internal: Site) -> AsyncIterator[Site]:
    async with Site("127.0.0.2") as site:
        site.routes = {
            "/page": web.Response(text=ARTICLE, content_type="text/html"),
            "/to-internal": f"{internal.url}/secret",
            "/to-localhost": f"http://localhost:{internal.port}/secret",
            "/to-metadata": "http://169.254.169.254/latest/meta-data/",
            "/to-file": "file:///etc/passwd",
            "/hop": "/hop2",
            "/hop2": "/page",
            "/loop": "/loop",
            "/image": web.Response(body=b"\x89PNG", content_type="image/png"),
        }
        yield site


@pytest.fixture
def fetcher() -> WebFetcher:
    # The timeout is a hang guard: the first fetch imports the HTML extractor, slow on a
    # loaded machine. The timeout itself is tested with a fetcher of its own.
    return WebFetcher(
        allow_networks=[ipaddress.ip_network("127.0.0.2/32")], max_bytes=100_000, timeout=60
    )


async def test_html_becomes_readable_text(public: Site, fetcher: WebFetcher) -> None:
    text = await fetcher.fetch(f"{public.url}/page")
    assert text.startswith(f"URL: {public.url}/page\nStatus: 200\n")
    assert "hold hands while they sleep" in text
    assert "<p>" not in text


async def test_redirects_are_followed_when_each_hop_is_allowed(
    public: Site, fetcher: WebFetcher
) -> None:
    text = await fetcher.fetch(f"{public.url}/hop")
    assert text.startswith(f"URL: {public.url}/page\n")
    assert public.hits == ["/hop", "/hop2", "/page"]


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/to-internal", "127.0.0.1 is a loopback address"),
        ("/to-localhost", "localhost resolves to a loopback address"),
        ("/to-metadata", "169.254.169.254 is a link-local address"),
        ("/to-file", "only http and https"),
        ("/loop", "more than 5 redirects"),
    ],
)
async def test_redirects_to_forbidden_places_are_refused(
    public: Site, internal: Site, fetcher: WebFetcher, path: str, why: str
) -> None:
    with pytest.raises(FetchRefusedError, match=why):
        await fetcher.fetch(f"{public.url}{path}")
    assert internal.hits == []


async def test_forbidden_urls_are_refused_before_any_connection(
    internal: Site, fetcher: WebFetcher
) -> None:
    for url, why in [
        (f"{internal.url}/secret", "loopback"),
        (f"http://localhost:{internal.port}/secret", "localhost resolves to a loopback"),
        (f"http://[::1]:{internal.port}/", "loopback"),
        (f"http://[::ffff:127.0.0.1]:{internal.port}/", "loopback"),
        ("http://10.0.0.1/", "private network"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("file:///etc/passwd", "only http and https"),
        ("gopher://127.0.0.2:70/", "only http and https"),
        ("ftp://example.org/", "only http and https"),
    ]:
        with pytest.raises(FetchRefusedError, match=why):
            await fetcher.fetch(url)
    assert internal.hits == []


async def test_body_is_cut_at_the_size_cap(public: Site, fetcher: WebFetcher) -> None:
    text = await fetcher.fetch(f"{public.url}/big")
    assert "(page cut at 100000 bytes)" in text
    assert text.count("z") == 100_000


async def test_a_page_that_never_arrives_times_out(public: Site) -> None:
    fetcher = WebFetcher(allow_networks=[ipaddress.ip_network("127.0.0.2/32")], timeout=2)
    with pytest.raises(FetchRefusedError, match="did not arrive within 2 s"):
        await fetcher.fetch(f"{public.url}/slow")


async def test_binary_content_is_refused(public: Site, fetcher: WebFetcher) -> None:
    with pytest.raises(FetchRefusedError, match="image/png, not text"):
        await fetcher.fetch(f"{public.url}/image")


async def test_text_is_capped_for_the_model(public: Site) -> None:
    fetcher = WebFetcher(
        allow_networks=[ipaddress.ip_network("127.0.0.2/32")], max_bytes=10**7, output_chars=1000
    )
    text = await fetcher.fetch(f"{public.url}/big")
    assert "(text cut at 1000 characters)" in text
    assert text.count("z") == 1000
