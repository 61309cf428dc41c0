"""`agenthub mcp`: an MCP server on stdio (the `mcp` SDK's `MCPServer`) that lets MCP hosts
(Claude Desktop, editors) use the running hub.

Each tool is one request of the hub's request table, asked over the control socket
(`<data-dir>/ctl.sock`, as `agenthub ctl` does), so the host acts as the hub's owner on this
machine. `--agent ID` (repeatable) limits which agents the host may use. Failures (no hub
running, an unknown or withheld agent, bad input, a failed run) are tool errors whose text
says what went wrong and what to do.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field, JsonValue

from app.ctl import NotRunningError, call
from hub.requests.agents import AgentsAnswer, HistoryAnswer
from hub.requests.messages import DEFAULT_WAIT, SendAnswer
from hub.sessions import MessageEntry

DEFAULT_SESSION = "mcp"
ASK_SECONDS = 15.0


class AgentRow(BaseModel):
    agent_id: str
    name: str
    model: str
    busy: bool


class Reply(BaseModel):
    agent_id: str
    session: str
    run_id: str
    status: str
    reply: str


class HistoryLine(BaseModel):
    seq: int
    role: str
    text: str


class McpHub:
    """The tools' side: requests to the hub over its control socket, for allowed agents."""

    def __init__(self, socket_path: Path, agents: frozenset[str] | None = None) -> None:
        self.socket_path = socket_path
        self.agents = agents

    async def ask(
        self, method: str, params: dict[str, JsonValue], *, seconds: float = ASK_SECONDS
    ) -> JsonValue:
        try:
            response = await asyncio.to_thread(
                call, self.socket_path, method, params, timeout=seconds
            )
        except NotRunningError as exc:
            raise ToolError(str(exc)) from None
        except (OSError, ValueError) as exc:
            raise ToolError(f"the hub did not answer properly: {exc}") from None
        if not response.ok:
            error = response.error
            raise ToolError(error.message if error else f"{method} failed")
        return response.result

    def check_agent(self, agent: str) -> None:
        if self.agents is not None and agent not in self.agents:
            allowed = ", ".join(sorted(self.agents)) or "none"
            raise ToolError(
                f"agent {agent!r} is not available to this MCP server (allowed: {allowed})"
            )

    async def list_agents(self) -> list[AgentRow]:
        answer = AgentsAnswer.model_validate(await self.ask("agents.list", {}))
        return [
            AgentRow(agent_id=a.agent_id, name=a.name, model=a.model, busy=a.busy)
            for a in answer.agents
            if self.agents is None or a.agent_id in self.agents
        ]

    async def send_message(self, agent: str, text: str, session: str, wait: float) -> Reply:
        self.check_agent(agent)
        params: dict[str, JsonValue] = {
            "agentId": agent,
            "content": text,
            "sessionKey": session,
            "timeout": wait,
        }
        answer = SendAnswer.model_validate(
            await self.ask("messages.send", params, seconds=wait + ASK_SECONDS)
        )
        if answer.error is not None:
            raise ToolError(f"the agent's run failed ({answer.error.code}): {answer.error.message}")
        return Reply(
            agent_id=answer.agent_id,
            session=answer.session_key,
            run_id=answer.run_id,
            status=answer.status or "still running (read its history later)",
            reply=answer.reply,
        )

    async def read_history(self, agent: str, session: str, limit: int) -> list[HistoryLine]:
        self.check_agent(agent)
        params: dict[str, JsonValue] = {"agentId": agent, "limit": limit}
        if session != "main":
            params["sessionKey"] = session
        answer = HistoryAnswer.model_validate(await self.ask("history", params))
        return [
            HistoryLine(seq=e.seq, role=e.role, text=e.text)
            for e in answer.entries
            if isinstance(e, MessageEntry)
        ]

    async def list_sessions(self, agent: str) -> JsonValue:
        self.check_agent(agent)
        return await self.ask("sessions.list", {"agentId": agent})


AgentArg = Annotated[str, Field(min_length=1, max_length=64, description="agent id")]
SessionArg = Annotated[
    str,
    Field(
        min_length=1,
        max_length=160,
        description="session key: letters, digits and ._:@+=- ('main' is the owner's own)",
    ),
]


def build_server(hub: McpHub) -> MCPServer:
    server: MCPServer = MCPServer(
        "agenthub",
        instructions="The agents of a running agenthub: list them, message them, read history.",
    )

    @server.tool()
    async def list_agents() -> list[AgentRow]:
        """The agents this server may use: id, display name, model, and whether one is
        answering now."""
        return await hub.list_agents()

    @server.tool()
    async def send_message(
        agent: AgentArg,
        text: Annotated[str, Field(min_length=1, description="the message")],
        session: SessionArg = DEFAULT_SESSION,
        wait_seconds: Annotated[float, Field(gt=0, le=3600)] = DEFAULT_WAIT,
    ) -> Reply:
        """Send a message to an agent in a session (default 'mcp', not the owner's 'main')
        and wait for its reply."""
        return await hub.send_message(agent, text, session, wait_seconds)

    @server.tool()
    async def read_history(
        agent: AgentArg,
        session: SessionArg = DEFAULT_SESSION,
        limit: Annotated[int, Field(ge=1, le=500)] = 50,
    ) -> list[HistoryLine]:
        """The latest messages of an agent's session, oldest first."""
        return await hub.read_history(agent, session, limit)

    @server.tool()
    async def list_sessions(agent: AgentArg) -> JsonValue:
        """An agent's sessions: key, title, last activity, message and unread counts."""
        return await hub.list_sessions(agent)

    return server


def run_mcp(socket_path: Path, agents: list[str] | None) -> int:
    """Serve MCP on stdin/stdout until the host closes it."""
    hub = McpHub(socket_path, frozenset(agents) if agents else None)
    build_server(hub).run("stdio")
    return 0
