"""`McpConnection`: one session with an MCP server, through pydantic-ai's `MCPToolset` on the
official `mcp` SDK's client sessions (stdio: starts the command; HTTP: opens a session).

It keeps the server's tools as last listed, for every run until they change. A change is seen
the way the session's protocol era offers it: a `tools/list_changed` notification (sessions
before 2026-07-28), or a `subscriptions/listen` stream asking for tool list changes (2026-07-28
sessions, which have no other channel for it). Either lists the tools again in the background.
A server that offers neither is listed again, in the background, after each call (a call may
change its tools). A listing that differs from the last one drops the tools built from it, so
the next run builds them anew; one that does not keeps them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic_ai import RunContext
from pydantic_ai.toolsets.abstract import ToolsetTool

from hub.approvals import CallContext
from hub.errors import CodedError
from hub.tasks import TaskFunnel
from hub.tools.config import McpServerConfig, ToolsConfig

log = logging.getLogger("agenthub.mcp")


class McpToolError(CodedError):
    """An MCP tool call failed: the server is down, timed out or answered with an error."""

    code = "mcp_tool"


class McpConnection:
    """One live session with a server: open, list, call, follow list changes, close.

    `on_failed(reason)` hears of a failure seen outside a call (a background listing);
    `on_listed(count)` of every listing."""

    def __init__(
        self,
        config: McpServerConfig,
        tooling: ToolsConfig,
        log_file: Path | None,
        funnel: TaskFunnel,
        on_failed: Callable[[str], None],
        on_listed: Callable[[int], None],
    ) -> None:
        self.config = config
        self.tooling = tooling
        self.log_file = log_file
        self._funnel = funnel
        self._on_failed = on_failed
        self._on_listed = on_listed
        self.toolset: Any = None  # the entered MCPToolset
        self.listed: list[Any] = []  # the server's tools (mcp types) as last listed
        # The tools built from that listing for the model; None means build them again.
        self.tools: dict[str, ToolsetTool[CallContext]] | None = None
        self.follows_changes = False
        self._follower: asyncio.Task[None] | None = None

    async def open(self) -> int:
        """Start or connect to the server and list its tools; their count."""
        from pydantic_ai.mcp import MCPToolset

        toolset: Any = MCPToolset(
            self._transport(),
            id=f"mcp-{self.config.name}",
            tool_error_behavior="failed",
            cache_tools=False,
            message_handler=self._on_message,
            init_timeout=self.tooling.mcp_start_timeout,
            read_timeout=self.tooling.mcp_call_timeout + self.tooling.mcp_start_timeout,
        )
        self.toolset = toolset
        limit = self.tooling.mcp_start_timeout
        try:
            async with asyncio.timeout(limit):
                await toolset.__aenter__()
                await self.relist()
                await self._follow()
        except TimeoutError:
            raise McpToolError(f"it did not finish starting within {limit:g} s") from None
        except Exception as exc:
            raise McpToolError(f"it could not start ({reason(exc)})") from None
        return len(self.listed)

    async def close(self) -> None:
        follower, self._follower = self._follower, None
        if follower is not None:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
        toolset = self.toolset
        if toolset is None:
            return
        try:
            async with asyncio.timeout(5):
                await toolset.__aexit__(None, None, None)
        except Exception as exc:  # a dead session may fail to close; it is gone either way
            log.debug("closing MCP server %s: %s", self.config.name, reason(exc))
        finally:
            # Cancelled mid-close, the transport's own task still ends the process.
            if self.toolset is toolset:
                self.toolset = None

    async def relist(self) -> None:
        """List the tools (within the start timeout); drop the built ones if they changed."""
        toolset = self.toolset
        if toolset is None:
            return
        async with asyncio.timeout(self.tooling.mcp_start_timeout):
            listed = list(await toolset.client.list_tools())
        if toolset is not self.toolset:
            return
        if listed != self.listed:
            self.listed, self.tools = listed, None
        self._on_listed(len(listed))

    async def tools_for(self, ctx: RunContext[CallContext]) -> dict[str, ToolsetTool[CallContext]]:
        """The server's tools for the model, built once per listing (a run's context gives
        them their retry budget)."""
        tools = self.tools
        if tools is None:
            async with asyncio.timeout(self.tooling.mcp_start_timeout):
                tools = self.tools = await self.toolset.get_tools(ctx)
        return tools

    async def call(
        self,
        name: str,
        tool_args: dict[str, Any],
        ctx: RunContext[CallContext],
        tool: ToolsetTool[CallContext],
    ) -> Any:
        """Call `name` (its name on the server) within `mcp_call_timeout`."""
        async with asyncio.timeout(self.tooling.mcp_call_timeout):
            result = await self.toolset.call_tool(name, tool_args, ctx, tool)
        if not self.follows_changes:
            self._funnel.spawn(self._relist_quietly(), name=f"mcp:{self.config.name}:list")
        return result

    async def probe(self) -> None:
        """List the tools as a liveness probe; raises when there is no answer in time."""
        try:
            await self.relist()
        except TimeoutError:
            raise McpToolError(
                f"it stopped answering (no reply within {self.tooling.mcp_start_timeout:g} s)"
            ) from None

    async def _follow(self) -> None:
        """Subscribe to tool list changes where the session's protocol era needs it."""
        from mcp.client.subscriptions import listen
        from mcp_types.version import MODERN_PROTOCOL_VERSIONS

        session = self.toolset.client.session
        if session.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            # Notifications reach `_on_message` when the server says it sends them.
            self.follows_changes = self.toolset.capabilities.tools_list_changed
            return
        entered = asyncio.get_running_loop().create_future()

        async def follow() -> None:
            try:
                async with listen(session, tools_list_changed=True) as changes:
                    self.follows_changes = bool(changes.honored.tools_list_changed)
                    entered.set_result(None)
                    async for _ in changes:
                        await self._relist_quietly()
            except Exception as exc:  # listen refused, or the stream ended
                self.follows_changes = False
                if not entered.done():
                    entered.set_result(None)
                log.debug("MCP server %s: no list changes followed (%s)", self.config.name, exc)

        self._follower = self._funnel.spawn(follow(), name=f"mcp:{self.config.name}:changes")
        await entered

    async def _relist_quietly(self) -> None:
        try:
            await self.relist()
        except Exception as exc:
            self._on_failed(f"listing its tools failed: {reason(exc)}")

    async def _on_message(self, message: Any) -> None:
        from mcp.types import ToolListChangedNotification

        if isinstance(getattr(message, "root", message), ToolListChangedNotification):
            self.tools = None
            self._funnel.spawn(self._relist_quietly(), name=f"mcp:{self.config.name}:list")

    def _transport(self) -> Any:
        config = self.config
        if config.command is not None:
            from fastmcp.client.transports import StdioTransport

            if self.log_file is not None:
                self.log_file.parent.mkdir(parents=True, exist_ok=True)
            return StdioTransport(
                config.command,
                list(config.args),
                env=dict(config.env),
                cwd=str(config.cwd) if config.cwd else None,
                keep_alive=False,
                log_file=self.log_file,
            )
        from fastmcp.client.transports import StreamableHttpTransport

        headers = {}
        for header, variable in config.headers.items():
            value = os.environ.get(variable)
            if value is None:
                raise McpToolError(f"header {header} needs the environment variable {variable}")
            headers[header] = value
        assert config.url is not None
        return StreamableHttpTransport(config.url, headers=headers)


def connection_lost(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(word in text for word in ("connection closed", "closed", "broken pipe", "eof"))


def reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, BaseExceptionGroup):
        inner = exc.exceptions[0] if exc.exceptions else None
        return reason(inner) if inner is not None else text
    return text if len(text) <= 300 else text[:299] + "…"
