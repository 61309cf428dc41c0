"""MCP servers (`[[mcp_servers]]`): each runs under a supervisor, and its tools reach the model
through pydantic-ai's `MCPToolset` (built on the official `mcp` SDK's client sessions).

- Start: the supervisor opens an `McpConnection` (hub/tools/mcp_connection.py: the session,
  its tool list and how changes to it are followed) within `mcp_start_timeout`. A server that
  fails to start, crashes or stops answering (a tools/list probe every `mcp_probe_interval`,
  bounded by the start timeout) is marked down with the reason, and restarted after a backoff
  that doubles from `mcp_restart_backoff` up to 60 s. Its health (`mcp:<name>`) is degraded
  meanwhile; the agent goes on with the other tools.
- Tools: the model sees `<server>_<tool>`; policies, approvals and events use `<server>.<tool>`
  (carried in the tool definition's metadata for `hub.tools.gate`). They are built once per
  listing of the server's tools, not per run or per model request.
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
from hub.health import Probe, SubsystemHealth
from hub.tasks import TaskFunnel
from hub.tools.config import McpServerConfig, ToolsConfig
from hub.tools.gate import SERVER, SHOWN_NAME
from hub.tools.mcp_connection import McpConnection, McpToolError, connection_lost, reason

log = logging.getLogger("agenthub.mcp")

MAX_BACKOFF = 60.0
TAIL_LINES = 20
State = Literal["starting", "ok", "down", "stopped"]
_MODEL_NAME = re.compile(r"[^A-Za-z0-9_-]")


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
        self._connection: McpConnection | None = None
        # The tools offered to the model (renamed, tagged), and the connection's they came from.
        self._offered: dict[str, ToolsetTool[CallContext]] = {}
        self._offered_from: object = None
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
        connection = self._connection
        if self.state != "ok" or connection is None or not self.config.serves(ctx.deps.agent_id):
            return {}
        try:
            tools = await connection.tools_for(ctx)
        except Exception as exc:
            self._failed(f"listing its tools failed: {reason(exc)}")
            return {}
        if self._offered_from is not tools:
            self._offered, self._offered_from = self._offer(tools), tools
        return dict(self._offered)

    def _offer(
        self, tools: dict[str, ToolsetTool[CallContext]]
    ) -> dict[str, ToolsetTool[CallContext]]:
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
        connection = self._connection
        original = str((tool.tool_def.metadata or {}).get("mcp_name", name))
        shown = f"{self.config.name}.{original}"
        if self.state != "ok" or connection is None or connection.toolset is None:
            raise McpToolError(f"{shown}: the MCP server is not running ({self.detail})")
        inner = replace(
            tool, toolset=connection.toolset, tool_def=replace(tool.tool_def, name=original)
        )
        try:
            return await connection.call(original, tool_args, ctx, inner)
        except TimeoutError:
            limit = self.tooling.mcp_call_timeout
            self._failed(f"a call to {original} did not return within {limit:g} s")
            raise McpToolError(
                f"{shown} did not return within {limit:g} s; the server is being restarted"
            ) from None
        except Exception as exc:
            if connection_lost(exc):
                self._failed(f"the connection broke during a call ({reason(exc)})")
            raise McpToolError(f"{shown} failed: {reason(exc)}") from None

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

    @property
    def tool_names(self) -> list[str]:
        """The server's tools as last listed (empty while it is not connected)."""
        connection = self._connection
        return sorted(tool.name for tool in connection.listed) if connection else []

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
                self._failed(reason(exc))
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
        self._wake.clear()
        self._connection = McpConnection(
            self.config,
            self.tooling,
            self.log_file,
            self._funnel,
            on_failed=self._failed,
            on_listed=self._listed,
        )
        return await self._connection.open()

    async def _watch(self) -> None:
        """Return (by raising) when the server stops answering or a call saw it fail."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.tooling.mcp_probe_interval):
                    await self._wake.wait()
            if self._wake.is_set():
                raise McpToolError(self.detail)
            assert self._connection is not None
            await self._connection.probe()

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    def _listed(self, count: int) -> None:
        if self.state == "ok":
            self._set("ok", f"{count} tools")

    def _failed(self, why: str) -> None:
        if self.state == "stopped":
            return
        self._set("down", why)
        self._wake.set()


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
