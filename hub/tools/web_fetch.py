"""`web_fetch(url)`: one web page as readable text, with an SSRF guard.

Only http and https. Every hop (the first request and each redirect) is checked: an IP literal
directly, a name through `GuardedResolver`, which resolves it once and refuses it when any of its
addresses is loopback, private, link-local (cloud metadata lives there), multicast or otherwise
not global; the connection then goes to the address that was checked, so a name cannot resolve
to something else between the check and the connection (DNS rebinding). Networks listed in
`allow_networks` are exempt. The body is read up to `max_bytes`, the whole fetch is bounded by
`timeout`, and HTML becomes readable markdown with trafilatura.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from hub.errors import CodedError
from hub.tools.config import IpNetwork

MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml+xml")
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class FetchRefusedError(CodedError):
    """web_fetch will not fetch this URL (scheme, address, size or time)."""

    code = "fetch_refused"


def blocked_reason(address: IpAddress, allow: Sequence[IpNetwork]) -> str | None:
    """Why `address` may not be fetched, or None when it may."""
    if any(address in network for network in allow):
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return blocked_reason(address.ipv4_mapped, allow)
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if address.is_private:
        return "a private network address"
    if address.is_multicast or not address.is_global:
        return "not a public address"
    return None


class GuardedResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, then refuses names with a blocked address."""

    def __init__(self, allow: Sequence[IpNetwork]) -> None:
        self._allow = tuple(allow)
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            reason = blocked_reason(ipaddress.ip_address(result["host"]), self._allow)
            if reason is not None:
                raise FetchRefusedError(f"refused: {host} resolves to {reason}")
        return results

    async def close(self) -> None:
        await self._inner.close()


def check_url(url: str, allow: Sequence[IpNetwork]) -> None:
    """Refuse a scheme other than http(s), and an IP-literal host that is blocked."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchRefusedError(
            f"refused: only http and https URLs can be fetched, not {parts.scheme or 'this'}:"
        )
    if not parts.hostname:
        raise FetchRefusedError("refused: the URL has no host")
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return
    reason = blocked_reason(address, allow)
    if reason is not None:
        raise FetchRefusedError(f"refused: {parts.hostname} is {reason}")


class WebFetcher:
    """Fetches pages under the guard. One per agent process; `close()` frees its connections."""

    def __init__(
        self,
        *,
        allow_networks: Sequence[IpNetwork] = (),
        max_bytes: int = 5_000_000,
        timeout: float = 20.0,
        output_chars: int = 100_000,
    ) -> None:
        self.allow = tuple(allow_networks)
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.output_chars = output_chars

    async def fetch(self, url: str) -> str:
        """The page at `url` as text (HTML made readable), headed by its final URL."""
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.allow), use_dns_cache=False)
        try:
            async with (
                asyncio.timeout(self.timeout),
                aiohttp.ClientSession(
                    connector=connector, headers={"User-Agent": "agenthub-web-fetch/1"}
                ) as session,
            ):
                return await self._follow(session, url)
        except TimeoutError:
            raise FetchRefusedError(
                f"gave up: the page did not arrive within {self.timeout:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise FetchRefusedError(
                f"could not fetch the page: {type(exc).__name__}: {exc}"
            ) from None

    async def _follow(self, session: aiohttp.ClientSession, url: str) -> str:
        for _ in range(MAX_REDIRECTS + 1):
            check_url(url, self.allow)
            async with session.get(url, allow_redirects=False) as response:
                location = response.headers.get("Location")
                if response.status in _REDIRECTS and location:
                    url = urljoin(url, location)
                    continue
                body, truncated = await self._read(response)
                text = await _readable(body, response)
                return self._report(url, response.status, text, truncated)
        raise FetchRefusedError(f"refused: more than {MAX_REDIRECTS} redirects")

    async def _read(self, response: aiohttp.ClientResponse) -> tuple[bytes, bool]:
        kind = response.content_type or ""
        if kind and not kind.startswith(_TEXT_TYPES):
            raise FetchRefusedError(f"refused: the page is {kind}, not text")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_bytes:
                return b"".join(chunks)[: self.max_bytes], True
        return b"".join(chunks), False

    def _report(self, url: str, status: int, text: str, truncated: bool) -> str:
        notes = [f"URL: {url}", f"Status: {status}"]
        if truncated:
            notes.append(f"(page cut at {self.max_bytes} bytes)")
        if len(text) > self.output_chars:
            text = text[: self.output_chars]
            notes.append(f"(text cut at {self.output_chars} characters)")
        return "\n".join(notes) + "\n\n" + text


async def _readable(body: bytes, response: aiohttp.ClientResponse) -> str:
    text = body.decode(response.charset or "utf-8", errors="replace")
    if "html" not in (response.content_type or ""):
        return text
    return await asyncio.to_thread(_extract, text)


def _extract(html: str) -> str:
    import trafilatura

    extracted: Any = trafilatura.extract(html, output_format="markdown", include_links=True)
    if isinstance(extracted, str) and extracted.strip():
        return extracted
    # Nothing article-like (a bare page): fall back to all of its visible text.
    text: Any = trafilatura.html2txt(html)
    return text if isinstance(text, str) else ""
