"""`agenthub mcp`: the hub's MCP tools (`hub.mcp_tools`) on stdio, for MCP hosts (Claude
Desktop, editors) on the hub's machine.

Each tool's request goes over the control socket (`<data-dir>/ctl.sock`, as `agenthub ctl`
does), so the host acts as the hub's owner. `--agent ID` (repeatable) limits which agents the
host may use. `send_message` asks with `stream`, so the reply grows as the run's events come
(the tool's progress notifications), as on the gateway's `/mcp` endpoint.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from mcp.server.mcpserver import Context
from pydantic import JsonValue, TypeAdapter, ValidationError

from app.control_protocol import MAX_LINE_BYTES, CtlEvent, CtlRequest, CtlResponse
from app.ctl import NotRunningError, call, not_running
from hub.errors import CodedError
from hub.mcp_tools import HubPort, TextSink, build_server
from hub.requests.messages import SendAnswer
from hub.run_watch import ReplyText

_LINE: TypeAdapter[CtlEvent | CtlResponse] = TypeAdapter(CtlEvent | CtlResponse)


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
        return _result(method, response)

    async def send(
        self, params: dict[str, JsonValue], on_text: TextSink, *, seconds: float
    ) -> SendAnswer:
        request = CtlRequest(
            id=secrets.token_hex(4),
            method="messages.send",
            params={**params, "wait": True},
            stream=True,
        )
        try:
            reader, writer = await asyncio.open_unix_connection(
                self.socket_path, limit=MAX_LINE_BYTES
            )
        except (FileNotFoundError, ConnectionRefusedError):
            raise CodedError(str(not_running(self.socket_path)), "unavailable") from None
        reply = ReplyText()
        try:
            async with asyncio.timeout(seconds):
                writer.write(request.model_dump_json().encode() + b"\n")
                await writer.drain()
                while isinstance(line := _LINE.validate_json(await _read_line(reader)), CtlEvent):
                    if delta := reply.take(line.event):
                        await on_text(delta)
        except TimeoutError:
            raise CodedError(
                f"the hub did not answer within {seconds:.0f} s", "unavailable"
            ) from None
        except (OSError, ValueError) as exc:
            raise CodedError(f"the hub did not answer properly: {exc}", "unavailable") from None
        finally:
            writer.close()
        try:
            return SendAnswer.model_validate(_result(request.method, line))
        except ValidationError:
            raise CodedError("the hub answered something unexpected", "bad_answer") from None


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    line = await reader.readline()
    if not line:
        raise ConnectionResetError("the hub closed the connection before it answered")
    return line


def _result(method: str, response: CtlResponse) -> JsonValue:
    if not response.ok:
        error = response.error
        raise CodedError(
            error.message if error else f"{method} failed", error.code if error else None
        )
    return response.result


def run_mcp(socket_path: Path, agents: list[str] | None) -> int:
    """Serve MCP on stdin/stdout until the host closes it."""
    port = ControlPort(socket_path)

    @asynccontextmanager
    async def open_port(ctx: Context) -> AsyncIterator[HubPort]:
        yield port

    build_server(open_port, frozenset(agents) if agents else None).run("stdio")
    return 0
