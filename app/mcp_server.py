"""`agenthub mcp`: the hub's MCP tools (`hub.mcp_tools`) on stdio, for MCP hosts (Claude
Desktop, editors) on the hub's machine.

Each tool's request goes over the control socket (`<data-dir>/ctl.sock`, as `agenthub ctl`
does), so the host acts as the hub's owner. `--agent ID` (repeatable) limits which agents the
host may use. The control socket answers once per request, so `send_message` returns the
whole reply when the run ends (the gateway's `/mcp` endpoint streams it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from mcp.server.mcpserver import Context
from pydantic import JsonValue, ValidationError

from app.ctl import NotRunningError, call
from hub.errors import CodedError
from hub.mcp_tools import HubPort, TextSink, build_server
from hub.requests.messages import SendAnswer


class ControlPort:
    """Requests over the control socket, as the owner."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path

    async def ask(self, method: str, params: dict[str, JsonValue], *, seconds: float) -> JsonValue:
        try:
            response = await asyncio.to_thread(
                call, self.socket_path, method, params, timeout=seconds
            )
        except NotRunningError as exc:
            raise CodedError(str(exc), "unavailable") from None
        except (OSError, ValueError) as exc:
            raise CodedError(f"the hub did not answer properly: {exc}", "unavailable") from None
        if not response.ok:
            error = response.error
            raise CodedError(
                error.message if error else f"{method} failed", error.code if error else None
            )
        return response.result

    async def send(
        self, params: dict[str, JsonValue], on_text: TextSink, *, seconds: float
    ) -> SendAnswer:
        answer = await self.ask("messages.send", {**params, "wait": True}, seconds=seconds)
        try:
            return SendAnswer.model_validate(answer)
        except ValidationError:
            raise CodedError("the hub answered something unexpected", "bad_answer") from None


def run_mcp(socket_path: Path, agents: list[str] | None) -> int:
    """Serve MCP on stdin/stdout until the host closes it."""
    port = ControlPort(socket_path)

    @asynccontextmanager
    async def open_port(ctx: Context) -> AsyncIterator[HubPort]:
        yield port

    build_server(open_port, frozenset(agents) if agents else None).run("stdio")
    return 0
