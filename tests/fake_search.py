"""A local web search server for tests: the Brave Search API, Tavily and a SearXNG instance.

`GET /res/v1/web/search` answers like Brave (`{"web": {"results": [{title, url,
description}]}}`), refusing a request whose `X-Subscription-Token` is not `key` with 401 (its
body repeats the token, as a careless service might, so tests see it never reaches the model).
`POST /search` answers like Tavily (`{"results": [{title, url, content}]}`), refusing a
request without `Authorization: Bearer <key>` the same way.
`GET /search` answers like SearXNG (`{"results": [{title, url, content}]}`) and, like an
instance whose JSON API is off, with 403 to a request without `format=json`.

Tests script what each request gets, in order, with `Hits` (results), `Status` (an HTTP error
with a JSON body), `Body` (raw text, e.g. malformed JSON) and `Hang` (no answer until the
server stops). Every request is recorded.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

from tests.conftest import free_port

Result = tuple[str, str, str]  # title, url, snippet


@dataclass(frozen=True)
class Hits:
    results: tuple[Result, ...]


@dataclass(frozen=True)
class Status:
    status: int
    body: dict[str, Any] = field(default_factory=lambda: {"error": "fault injected"})


@dataclass(frozen=True)
class Body:
    text: str
    content_type: str = "application/json"


@dataclass(frozen=True)
class Hang:
    pass


Plan = Hits | Status | Body | Hang

OTTERS: tuple[Result, ...] = (
    (
        "Sea otter - Wikipedia",
        "https://en.wikipedia.org/wiki/Sea_otter",
        "The <strong>sea otter</strong> holds hands &amp; sleeps &lt;afloat&gt;.",
    ),
    (
        "Otters <b>hold</b> hands",
        "https://example.org/otters",
        "Why <strong>otters</strong>\n  hold   hands while they sleep.",
    ),
    ("Otter facts", "https://example.net/facts", ""),
)


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    path: str
    query: dict[str, str]
    token: str | None
    body: dict[str, Any] | None = None


@dataclass
class FakeSearch:
    """The server: `async with FakeSearch() as search:`; `brave_url` and `searxng_url` are
    what `web_search_url` takes for each."""

    key: str = "brave-test-key-0123456789"
    default: Plan = field(default_factory=lambda: Hits(OTTERS))
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    _plans: deque[Plan] = field(default_factory=deque)
    _runner: web.AppRunner | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def brave_url(self) -> str:
        return f"{self.base_url}/res/v1/web/search"

    @property
    def tavily_url(self) -> str:
        return f"{self.base_url}/search"

    @property
    def searxng_url(self) -> str:
        return self.base_url

    def enqueue(self, *plans: Plan) -> None:
        """What the next requests get, in order; after these, `default`."""
        self._plans.extend(plans)

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/res/v1/web/search", self._brave)
        app.router.add_get("/search", self._searxng)
        app.router.add_post("/search", self._tavily)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        self.port = self.port or free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def _record(
        self, request: web.Request, token: str | None, body: dict[str, Any] | None = None
    ) -> Plan:
        self.seen.append(Seen(request.path, dict(request.query), token, body))
        return self._plans.popleft() if self._plans else self.default

    async def _brave(self, request: web.Request) -> web.Response:
        token = request.headers.get("X-Subscription-Token")
        plan = self._record(request, token)
        if token != self.key:
            return web.json_response({"error": f"unknown token {token}"}, status=401)
        if isinstance(plan, Hits):
            hits = [{"title": t, "url": u, "description": d} for t, u, d in plan.results]
            # No `web` section at all when nothing matched, as Brave answers.
            answer = {"type": "search", "web": {"type": "search", "results": hits}}
            return web.json_response(answer if hits else {"type": "search"})
        return await self._other(plan)

    async def _tavily(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization")
        plan = self._record(request, token, await request.json())
        if token != f"Bearer {self.key}":
            return web.json_response({"detail": {"error": f"bad key {token}"}}, status=401)
        if isinstance(plan, Hits):
            hits = [{"title": t, "url": u, "content": c, "score": 0.9} for t, u, c in plan.results]
            return web.json_response({"query": "?", "results": hits, "response_time": 0.1})
        return await self._other(plan)

    async def _searxng(self, request: web.Request) -> web.Response:
        plan = self._record(request, None)
        if request.query.get("format") != "json":
            return web.Response(status=403, text="403 Forbidden")
        if isinstance(plan, Hits):
            hits = [{"title": t, "url": u, "content": c or None} for t, u, c in plan.results]
            return web.json_response({"query": request.query.get("q"), "results": hits})
        return await self._other(plan)

    async def _other(self, plan: Plan) -> web.Response:
        if isinstance(plan, Status):
            return web.json_response(plan.body, status=plan.status)
        if isinstance(plan, Body):
            return web.Response(text=plan.text, content_type=plan.content_type)
        await self._stopping.wait()
        return web.Response(status=503)
