"""`web_search(query, count)`: a compact numbered list of web results (title, URL, snippet).

Three services, chosen by `web_search_provider` (unset: SearXNG when `web_search_url` is set,
else the one with a key, Brave first): the Brave Search API (`X-Subscription-Token:
BRAVE_API_KEY`), Tavily (`Authorization: Bearer TAVILY_API_KEY`), or a SearXNG instance's JSON
API (`/search?format=json`). Snippets arrive with HTML in them (Brave marks the matched
words with `<strong>`): they become plain text through the stdlib HTML parser. The result URLs
are only text for the model; reading one is `web_fetch`'s job, under its SSRF guard.

Failures name what happened and what to do, never the key or the service's URL.
"""

from __future__ import annotations

import asyncio
import logging
from html.parser import HTMLParser
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from hub.errors import CodedError
from hub.tools.config import SearchProvider, ToolsConfig
from hub.tools.policy import enabled_builtins

BRAVE_ENDPOINT = "https://api.search.brave.com/res/v1/web/search"
TAVILY_ENDPOINT = "https://api.tavily.com/search"
MAX_COUNT = 10
SNIPPET_CHARS = 400
TITLE_CHARS = 200
SERVICE_NAMES: dict[SearchProvider, str] = {
    "brave": "Brave Search",
    "tavily": "Tavily",
    "searxng": "SearXNG",
}
KEY_NAMES: dict[SearchProvider, str] = {"brave": "BRAVE_API_KEY", "tavily": "TAVILY_API_KEY"}
_log = logging.getLogger("agenthub.tools.web_search")


class SearchFailedError(CodedError):
    """The search service did not give results (refused, rate limited, late or garbled)."""

    code = "search_failed"


class SearchHit(BaseModel):
    """One result as the model sees it."""

    title: str
    url: str
    snippet: str


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _BraveHit(_Loose):
    title: str = ""
    url: str
    description: str = ""


class _BraveWeb(_Loose):
    results: list[_BraveHit] = []


class _BraveAnswer(_Loose):
    web: _BraveWeb | None = None  # absent when nothing matched


class _ContentHit(_Loose):
    title: str = ""
    url: str
    content: str | None = ""


class _ResultsAnswer(_Loose):
    """Tavily's answer and SearXNG's: `results`, each with its snippet in `content`."""

    results: list[_ContentHit]


def search_provider(config: ToolsConfig) -> SearchProvider:
    """The service web_search uses under `config`."""
    if config.web_search_provider is not None:
        return config.web_search_provider
    if config.web_search_url:
        return "searxng"
    return "tavily" if config.brave_api_key is None and config.tavily_api_key else "brave"


def api_key(config: ToolsConfig, provider: SearchProvider) -> SecretStr | None:
    if provider == "brave":
        return config.brave_api_key
    return config.tavily_api_key if provider == "tavily" else None


def web_search_problem(config: ToolsConfig) -> str | None:
    """Why web_search, switched on in `config`, cannot work (naming the key to set), or None."""
    if "web_search" not in enabled_builtins(config):
        return None
    provider = search_provider(config)
    if provider == "searxng":
        if config.web_search_url:
            return None
        return (
            "web_search uses SearXNG but has no instance: set web_search_url "
            "(AGENTHUB_WEB_SEARCH_URL) to its address"
        )
    if api_key(config, provider) is not None:
        return None
    if config.web_search_provider is None:
        return (
            "web_search is enabled but has no search service: set BRAVE_API_KEY (Brave Search "
            "API), TAVILY_API_KEY (Tavily) or web_search_url (a SearXNG instance)"
        )
    return f"web_search uses {SERVICE_NAMES[provider]} but has no key: set {KEY_NAMES[provider]}"


class WebSearcher:
    """Runs searches against the configured service; one HTTP client per search."""

    def __init__(self, config: ToolsConfig) -> None:
        self.provider = search_provider(config)
        self.service = SERVICE_NAMES[self.provider]
        self.url = config.web_search_url
        self.key = api_key(config, self.provider)
        self.timeout = config.web_search_timeout

    async def search(self, query: str, count: int = 5) -> str:
        """The results for `query` (at most `count`, 1 to 10) as a numbered list."""
        query = query.strip()
        if not query:
            raise SearchFailedError("web search needs a query: say what to look for")
        count = max(1, min(MAX_COUNT, count))
        hits = await self._hits(query, count)
        _log.debug("web_search via %s: %d results", self.service, len(hits))
        if not hits:
            return f'No results for "{query}" ({self.service}). Try fewer or other words.'
        return render(query, self.service, hits[:count])

    async def _hits(self, query: str, count: int) -> list[SearchHit]:
        problem = self._problem()
        if problem is not None:
            raise SearchFailedError(f"web search is not set up: {problem}")
        try:
            async with (
                asyncio.timeout(self.timeout),
                httpx.AsyncClient(
                    timeout=self.timeout,
                    follow_redirects=True,
                    headers={"User-Agent": "agenthub-web-search/1"},
                ) as client,
            ):
                response = await self._request(client, query, count)
                self._check_status(response)
                return self._parse(response)
        except (TimeoutError, httpx.TimeoutException):
            raise self._late() from None
        except httpx.HTTPError as exc:
            # The exception's text may hold the service's address: its type says enough.
            raise SearchFailedError(
                f"web search failed: could not reach {self.service} ({type(exc).__name__}); "
                "check the network and the web_search settings"
            ) from None

    def _problem(self) -> str | None:
        if self.provider == "searxng":
            return None if self.url else "set web_search_url"
        return None if self.key is not None else f"set {KEY_NAMES[self.provider]}"

    async def _request(self, client: httpx.AsyncClient, query: str, count: int) -> httpx.Response:
        if self.provider == "brave":
            assert self.key is not None
            return await client.get(
                self.url or BRAVE_ENDPOINT,
                params={"q": query, "count": count},
                headers={
                    "Accept": "application/json",
                    "X-Subscription-Token": self.key.get_secret_value(),
                },
            )
        if self.provider == "tavily":
            assert self.key is not None
            return await client.post(
                self.url or TAVILY_ENDPOINT,
                json={"query": query, "max_results": count},
                headers={"Authorization": f"Bearer {self.key.get_secret_value()}"},
            )
        assert self.url is not None
        base = self.url.rstrip("/")
        endpoint = base if base.endswith("/search") else f"{base}/search"
        return await client.get(
            endpoint,
            params={"q": query, "format": "json"},
            headers={"Accept": "application/json"},
        )

    def _check_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if status == 200:
            return
        service = self.service
        if status == 429:
            raise SearchFailedError(
                f"web search is rate limited by {service} (HTTP 429): wait before searching "
                "again, or search less often"
            )
        bad_key = status in (401, 403) or (self.provider == "brave" and _brave_bad_token(response))
        if self.provider != "searxng" and bad_key:
            raise SearchFailedError(
                f"web search failed: {service} refused the API key (HTTP {status}); "
                f"check {KEY_NAMES[self.provider]} and its subscription"
            )
        if self.provider == "tavily" and status in (432, 433):
            raise SearchFailedError(
                f"web search failed: the Tavily plan's usage limit is reached (HTTP {status}); "
                "raise it in the Tavily dashboard, or wait for the next billing period"
            )
        if self.provider == "searxng" and status == 403:
            raise SearchFailedError(
                f"web search failed: the {service} instance refused the request (HTTP 403); "
                "its JSON API may be off: add json to search.formats in its settings.yml"
            )
        if status in (401, 403):
            raise SearchFailedError(
                f"web search failed: the {service} instance wants credentials (HTTP {status}); "
                "put them in web_search_url"
            )
        raise SearchFailedError(
            f"web search failed: {service} answered HTTP {status}; try again later"
        )

    def _parse(self, response: httpx.Response) -> list[SearchHit]:
        try:
            if self.provider == "brave":
                brave = _BraveAnswer.model_validate_json(response.content)
                found = brave.web.results if brave.web else []
                return [hit_of(h.title, h.url, h.description) for h in found]
            answer = _ResultsAnswer.model_validate_json(response.content)
            return [hit_of(h.title, h.url, h.content or "") for h in answer.results]
        except ValidationError:
            raise SearchFailedError(
                f"web search failed: {self.service} sent an answer that is not the JSON "
                "expected; try again later"
            ) from None

    def _late(self) -> SearchFailedError:
        return SearchFailedError(
            f"web search gave up: {self.service} did not answer within {self.timeout:g} s; "
            "try again, or raise web_search_timeout"
        )


def _brave_bad_token(response: httpx.Response) -> bool:
    """Brave answers an unknown key with 422 and the code SUBSCRIPTION_TOKEN_INVALID."""
    if response.status_code != 422:
        return False
    try:
        body: Any = response.json()
    except ValueError:
        return False
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and error.get("code") == "SUBSCRIPTION_TOKEN_INVALID"


def hit_of(title: str, url: str, snippet: str) -> SearchHit:
    return SearchHit(
        title=_short(plain_text(title), TITLE_CHARS) or url,
        url=url.strip(),
        snippet=_short(plain_text(snippet), SNIPPET_CHARS),
    )


def render(query: str, service: str, hits: list[SearchHit]) -> str:
    lines = [f'Results for "{query}" ({service}):']
    for number, hit in enumerate(hits, 1):
        lines += ["", f"{number}. {hit.title}", f"   {hit.url}"]
        if hit.snippet:
            lines.append(f"   {hit.snippet}")
    return "\n".join(lines)


class _TextOnly(HTMLParser):
    _BREAKS = frozenset({"br", "p", "div", "li", "tr", "td"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BREAKS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def plain_text(html: str) -> str:
    """`html` without its tags, entities decoded, whitespace collapsed."""
    parser = _TextOnly()
    parser.feed(html)
    parser.close()
    return " ".join("".join(parser.parts).split())


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
