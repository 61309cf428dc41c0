"""MCP servers (`[[mcp_servers]]`): each runs under a supervisor, and its tools reach the model
through pydantic-ai's `MCPToolset` (built on the official `mcp` SDK's client sessions).

- Start: the supervisor connects (stdio: starts the command; HTTP: opens a session) within
  `mcp_start_timeout` and lists the tools. A server that fails to start, crashes or stops
  answering (a tools/list probe every `mcp_probe_interval`, bounded by the start timeout) is
  marked down with the reason, and restarted after a backoff that doubles from
  `mcp_restart_backoff` up to 60 s. Its health (`mcp:<name>`) is degraded meanwhile; the agent
  goes on with the other tools.
- Tools: the model sees `<server>_<tool>`; policies, approvals and events use `<server>.<tool>`
  (carried in the tool definition's metadata for `hub.tools.gate`). The list follows the
  server's `tools/list_changed` notifications (MCPToolset drops its cache on them).
- Calls: each is bounded by `mcp_call_timeout`; the gate caps the result. A call that times out
  restarts the server too (a hung call, or a result too large to read in time, keeps its
  connection busy).
- stderr of a stdio server goes to `<log dir>/mcp-<name>.log`; `stderr_tail()` reads its end
  (for health details and `agenthub doctor`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from pydantic_ai import RunContext
from pydantic_ai.toolsets import AbstractToolset
from pydantic_ai.toolsets.abstract import ToolsetTool

from hub.approvals import CallContext
from hub.errors import CodedError
from hub.health import Probe, SubsystemHealth
from hub.tasks import TaskFunnel
from hub.tools.config import McpServerConfig, ToolsConfig
from hub.tools.gate import SERVER, SHOWN_NAME

log = logging.getLogger("agenthub.mcp")

MAX_BACKOFF = 60.0
TAIL_LINES = 20
State = Literal["starting", "ok", "down", "stopped"]
_MODEL_NAME = re.compile(r"[^A-Za-z0-9_-]")


class McpToolError(CodedError):
    """An MCP tool call failed: the server is down, timed out or answered with an error."""

    code = "mcp_tool"


def log_path(log_dir: Path | None, name: str) -> Path | None:
    return log_dir / f"mcp-{name}.log" if log_dir is not None else None


def read_tail(path: Path | None, lines: int = TAIL_LINES) -> list[str]:
    """The last `lines` lines of a server's stderr log (empty when there is none)."""
    if path is None or not path.is_file():
        return []
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - 64_000))
        text = handle.read().decode(errors="replace")
    return list(deque(text.splitlines(), maxlen=lines))


class McpServer(AbstractToolset[CallContext]):
    """One configured MCP server: its supervisor, state and tools, as one pydantic-ai toolset
    that stays the same object across restarts (it lists no tools while the server is down)."""

    def __init__(self, config: McpServerConfig, tooling: ToolsConfig) -> None:
        self.config = config
        self.tooling = tooling
        self.state: State = "starting"
        self.detail = "not started"
        self.restarts = 0
        self.log_file = log_path(tooling.mcp_log_dir, config.name)
        self._inner: Any = None  # the connected MCPToolset
        # Its tools as last listed; None means list them again (start, list_changed, probes).
        self._tools: dict[str, ToolsetTool[CallContext]] | None = None
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._funnel = TaskFunnel(f"mcp:{config.name}", log)
        self._supervisor: asyncio.Task[None] | None = None

    # -- AbstractToolset ---------------------------------------------------------------------

    @property
    def id(self) -> str | None:
        return f"mcp:{self.config.name}"

    @property
    def label(self) -> str:
        return f"MCP server {self.config.name!r}"

    async def __aenter__(self) -> McpServer:
        return self  # the supervisor owns the connection, not each run

    async def __aexit__(self, *args: Any) -> bool | None:
        return None

    async def get_tools(self, ctx: RunContext[CallContext]) -> dict[str, ToolsetTool[CallContext]]:
        inner = self._inner
        if self.state != "ok" or inner is None or not self.config.serves(ctx.deps.agent_id):
            return {}
        tools = self._tools
        if tools is None:
            try:
                async with asyncio.timeout(self.tooling.mcp_start_timeout):
                    tools = self._tools = await inner.get_tools(ctx)
            except Exception as exc:
                self._failed(f"listing its tools failed: {_reason(exc)}")
                return {}
        offered: dict[str, ToolsetTool[CallContext]] = {}
        for name, tool in tools.items():
            model_name = _MODEL_NAME.sub("_", f"{self.config.name}_{name}")[:64]
            metadata = {
                **(tool.tool_def.metadata or {}),
                SHOWN_NAME: f"{self.config.name}.{name}",
                SERVER: self.config.name,
                "mcp_name": name,
            }
            tool_def = replace(tool.tool_def, name=model_name, metadata=metadata)
            offered[model_name] = replace(tool, toolset=self, tool_def=tool_def)
        return offered

    async def call_tool(
        self,
        name: str,
        tool_args: dict[str, Any],
        ctx: RunContext[CallContext],
        tool: ToolsetTool[CallContext],
    ) -> Any:
        inner = self._inner
        shown = f"{self.config.name}.{(tool.tool_def.metadata or {}).get('mcp_name', name)}"
        if self.state != "ok" or inner is None:
            raise McpToolError(f"{shown}: the MCP server is not running ({self.detail})")
        original = str((tool.tool_def.metadata or {}).get("mcp_name", name))
        inner_tool = replace(tool, toolset=inner, tool_def=replace(tool.tool_def, name=original))
        limit = self.tooling.mcp_call_timeout
        try:
            async with asyncio.timeout(limit):
                result = await inner.call_tool(original, tool_args, ctx, inner_tool)
            # A call may change the server's tools, and a modern (stateless) MCP session
            # delivers no list_changed notification: list them again, off the critical path.
            self._funnel.spawn(self._relist(ctx), name=f"{self.name}:list")
            return result
        except TimeoutError:
            self._failed(f"a call to {original} did not return within {limit:g} s")
            raise McpToolError(
                f"{shown} did not return within {limit:g} s; the server is being restarted"
            ) from None
        except Exception as exc:
            if _connection_lost(exc):
                self._failed(f"the connection broke during a call ({_reason(exc)})")
            raise McpToolError(f"{shown} failed: {_reason(exc)}") from None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return f"mcp:{self.config.name}"

    async def start(self) -> None:
        """Start supervising; returns at once (a slow or broken server never blocks start-up)."""
        if self._supervisor is None:
            self._supervisor = self._funnel.spawn(self._supervise(), name=self.name)

    async def wait_until(self, condition: Callable[[McpServer], bool]) -> None:
        """Wait until `condition(self)` holds (checked at every change of state)."""
        while not condition(self):
            await self._changed.wait()

    def _set(self, state: State, detail: str) -> None:
        self.state, self.detail = state, detail
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def stop(self) -> None:
        self._set("stopped", "stopped")
        await self._funnel.close()
        self._supervisor = None
        await self._disconnect()

    def health(self) -> SubsystemHealth:
        if self.state == "ok":
            return SubsystemHealth(name=self.name, status="ok", detail=self.detail)
        tail = read_tail(self.log_file, 1)
        detail = self.detail + (f"; stderr: {tail[-1]}" if tail else "")
        return SubsystemHealth(name=self.name, status="degraded", detail=detail)

    def stderr_tail(self, lines: int = TAIL_LINES) -> list[str]:
        return read_tail(self.log_file, lines)

    # -- supervision -------------------------------------------------------------------------

    async def _supervise(self) -> None:
        backoff = self.tooling.mcp_restart_backoff
        while True:
            try:
                count = await self._connect()
                self._set("ok", f"{count} tools")
                log.info("MCP server %s is up with %d tools", self.config.name, count)
                backoff = self.tooling.mcp_restart_backoff
                await self._watch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed(_reason(exc))
            await self._disconnect()
            log.warning(
                "MCP server %s is down (%s); restarting in %.0f s",
                self.config.name,
                self.detail,
                backoff,
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
            self.restarts += 1
            self._set("starting", f"restarting (attempt {self.restarts})")

    async def _connect(self) -> int:
        from pydantic_ai.mcp import MCPToolset

        self._wake.clear()
        self._tools = None
        toolset: Any = MCPToolset(
            self._transport(),
            id=f"mcp-{self.config.name}",
            tool_error_behavior="failed",
            cache_tools=False,
            message_handler=self._on_message,
            init_timeout=self.tooling.mcp_start_timeout,
            read_timeout=self.tooling.mcp_call_timeout + self.tooling.mcp_start_timeout,
        )
        self._inner = toolset
        limit = self.tooling.mcp_start_timeout
        try:
            async with asyncio.timeout(limit):
                await toolset.__aenter__()
                return len(await toolset.list_tools())
        except TimeoutError:
            raise McpToolError(f"it did not finish starting within {limit:g} s") from None
        except Exception as exc:
            raise McpToolError(f"it could not start ({_reason(exc)})") from None

    async def _watch(self) -> None:
        """Return (by raising) when the server stops answering or a call saw it fail."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.tooling.mcp_probe_interval):
                    await self._wake.wait()
            if self._wake.is_set():
                raise McpToolError(self.detail)
            try:
                async with asyncio.timeout(self.tooling.mcp_start_timeout):
                    await self._inner.client.list_tools()
                self._tools = None  # the probe's answer may differ from the cached list
            except TimeoutError:
                raise McpToolError(
                    f"it stopped answering (no reply within {self.tooling.mcp_start_timeout:g} s)"
                ) from None

    async def _disconnect(self) -> None:
        inner = self._inner
        if inner is None:
            return
        try:
            async with asyncio.timeout(5):
                await inner.__aexit__(None, None, None)
        except Exception as exc:  # a dead session may fail to close; it is gone either way
            log.debug("closing MCP server %s: %s", self.config.name, _reason(exc))
        finally:
            # Cancelled mid-close, the transport's own task still ends the process.
            if self._inner is inner:
                self._inner = None

    async def _relist(self, ctx: RunContext[CallContext]) -> None:
        inner = self._inner
        if inner is None:
            return
        try:
            async with asyncio.timeout(self.tooling.mcp_start_timeout):
                tools = await inner.get_tools(ctx)
        except Exception as exc:
            self._failed(f"listing its tools failed: {_reason(exc)}")
            return
        if inner is self._inner:
            self._tools = tools
            self._set(self.state, f"{len(tools)} tools")

    @property
    def tool_names(self) -> list[str]:
        """The server's tools as last listed (empty before the first run lists them)."""
        return sorted(self._tools or ())

    async def _on_message(self, message: Any) -> None:
        from mcp.types import ToolListChangedNotification

        if isinstance(getattr(message, "root", message), ToolListChangedNotification):
            self._tools = None

    def _failed(self, reason: str) -> None:
        if self.state == "stopped":
            return
        self._set("down", reason)
        self._wake.set()

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


async def check_server(config: McpServerConfig, tooling: ToolsConfig) -> tuple[bool, str]:
    """For `agenthub doctor`: start the server once; whether it came up, and what it said
    (its tool count, or the reason it failed and the end of its stderr)."""
    server = McpServer(config, tooling.model_copy(update={"mcp_restart_backoff": 3600.0}))
    await server.start()
    try:
        await server.wait_until(lambda s: s.state != "starting")
        if server.state == "ok":
            return True, f"started, {server.detail}"
        tail = "\n".join(f"  | {line}" for line in server.stderr_tail(5))
        return False, server.detail + (f"\n  stderr:\n{tail}" if tail else "")
    finally:
        await server.stop()


class McpServers:
    """Every configured server of the process: one `Service` for the composition root."""

    name = "mcp"

    def __init__(self, tooling: ToolsConfig) -> None:
        self.servers = [McpServer(config, tooling) for config in tooling.mcp_servers]

    def for_agent(self, agent_id: str) -> list[McpServer]:
        return [s for s in self.servers if s.config.serves(agent_id)]

    async def start(self) -> None:
        for server in self.servers:
            await server.start()

    async def stop(self) -> None:
        await asyncio.gather(*(server.stop() for server in self.servers))

    def probes(self) -> Mapping[str, Probe]:
        return {server.name: server.health for server in self.servers}


def _connection_lost(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(word in text for word in ("connection closed", "closed", "broken pipe", "eof"))


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, BaseExceptionGroup):
        inner = exc.exceptions[0] if exc.exceptions else None
        return _reason(inner) if inner is not None else text
    return text if len(text) <= 300 else text[:299] + "…"
