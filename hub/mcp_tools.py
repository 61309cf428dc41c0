"""The hub's tools for MCP hosts (Claude Desktop, editors), defined once for both transports:
`agenthub mcp` on stdio (`app.mcp_server`, over the control socket, as the owner) and the
gateway's `/mcp` endpoint (`gateway.mcp_http`, as the device whose token the host sends).

Each tool is a request of the hub's request table, asked through a `HubPort`, so the hub's own
rules decide what the caller may see and write; a refusal, an unknown agent, bad input or a
failed run is a tool error whose text says what went wrong. `agents` (stdio's `--agent`)
limits the agents a server may use further.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Protocol, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field, JsonValue, ValidationError

from hub.errors import CodedError
from hub.requests.agents import AgentsAnswer, HistoryAnswer
from hub.requests.mail import InboxAnswer, InboxMessage
from hub.requests.messages import DEFAULT_WAIT, SendAnswer
from hub.sessions import MessageEntry

_M = TypeVar("_M", bound=BaseModel)

DEFAULT_SESSION = "mcp"
ASK_SECONDS = 15.0

TextSink = Callable[[str], Awaitable[None]]


class HubPort(Protocol):
    """One caller's way to the hub's request table. Both raise `CodedError` on refusal."""

    async def ask(
        self, method: str, params: dict[str, JsonValue], *, seconds: float
    ) -> JsonValue: ...

    async def send(
        self, params: dict[str, JsonValue], on_text: TextSink, *, seconds: float
    ) -> SendAnswer:
        """`messages.send` with `wait`; `on_text` gets the reply as it grows, where the
        port can see the run's events."""
        ...


OpenPort = Callable[[Context], AbstractAsyncContextManager[HubPort]]


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


class HubTools:
    """What the tools do, through one port, for the allowed agents."""

    def __init__(self, port: HubPort, agents: frozenset[str] | None) -> None:
        self.port = port
        self.agents = agents

    async def ask(
        self, method: str, params: dict[str, JsonValue], *, seconds: float = ASK_SECONDS
    ) -> JsonValue:
        try:
            return await self.port.ask(method, params, seconds=seconds)
        except CodedError as exc:
            raise ToolError(exc.message) from None

    def check_agent(self, agent: str) -> None:
        if self.agents is not None and agent not in self.agents:
            allowed = ", ".join(sorted(self.agents)) or "none"
            raise ToolError(
                f"agent {agent!r} is not available to this MCP server (allowed: {allowed})"
            )

    async def list_agents(self) -> list[AgentRow]:
        answer = _parse(AgentsAnswer, await self.ask("agents.list", {}))
        return [
            AgentRow(agent_id=a.agent_id, name=a.name, model=a.model, busy=a.busy)
            for a in answer.agents
            if self.agents is None or a.agent_id in self.agents
        ]

    async def send_message(
        self, agent: str, text: str, session: str, wait: float, on_text: TextSink
    ) -> Reply:
        self.check_agent(agent)
        params: dict[str, JsonValue] = {
            "agentId": agent,
            "content": text,
            "sessionKey": session,
            "timeout": wait,
        }
        try:
            answer = await self.port.send(params, on_text, seconds=wait + ASK_SECONDS)
        except CodedError as exc:
            raise ToolError(exc.message) from None
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
        params: dict[str, JsonValue] = {"agentId": agent, "limit": limit, "sessionKey": session}
        answer = _parse(HistoryAnswer, await self.ask("history", params))
        return [
            HistoryLine(seq=e.seq, role=e.role, text=e.text)
            for e in answer.entries
            if isinstance(e, MessageEntry)
        ]

    async def list_sessions(self, agent: str) -> JsonValue:
        self.check_agent(agent)
        return await self.ask("sessions.list", {"agentId": agent})

    async def inbox(self, agent: str, unread_only: bool, limit: int) -> list[InboxMessage]:
        self.check_agent(agent)
        params: dict[str, JsonValue] = {
            "agentId": agent,
            "unreadOnly": unread_only,
            "limit": limit,
        }
        return _parse(InboxAnswer, await self.ask("mail.inbox", params)).messages


def _parse(model: type[_M], payload: JsonValue) -> _M:
    try:
        return model.model_validate(payload)
    except ValidationError:
        raise ToolError("the hub answered something unexpected; is it the same version?") from None


AgentArg = Annotated[str, Field(min_length=1, max_length=64, description="agent id")]
SessionArg = Annotated[
    str,
    Field(
        min_length=1,
        max_length=160,
        description="session key: letters, digits and ._:@+=- ('main' is the owner's own)",
    ),
]


def build_server(open_port: OpenPort, agents: frozenset[str] | None = None) -> MCPServer:
    """The MCP server with the hub's tools; `open_port` gives each call its way to the hub."""
    server: MCPServer = MCPServer(
        "agenthub",
        instructions="The agents of a running agenthub: list them, message them, read "
        "their history and their inbox.",
    )

    @asynccontextmanager
    async def tools(ctx: Context) -> AsyncIterator[HubTools]:
        try:
            async with open_port(ctx) as port:
                yield HubTools(port, agents)
        except CodedError as exc:
            raise ToolError(exc.message) from None

    @server.tool()
    async def list_agents(ctx: Context) -> list[AgentRow]:
        """The agents this server may use: id, display name, model, and whether one is
        answering now."""
        async with tools(ctx) as hub:
            return await hub.list_agents()

    @server.tool()
    async def send_message(
        ctx: Context,
        agent: AgentArg,
        text: Annotated[str, Field(min_length=1, description="the message")],
        session: SessionArg = DEFAULT_SESSION,
        wait_seconds: Annotated[float, Field(gt=0, le=3600)] = DEFAULT_WAIT,
    ) -> Reply:
        """Send a message to an agent in a session (default 'mcp', not the owner's 'main')
        and wait for its reply. With a progress token, the reply streams as progress
        notifications (each `message` is the text added since the last one)."""
        written = 0

        async def on_text(delta: str) -> None:
            nonlocal written
            written += len(delta)
            await ctx.report_progress(written, message=delta)

        async with tools(ctx) as hub:
            return await hub.send_message(agent, text, session, wait_seconds, on_text)

    @server.tool()
    async def read_history(
        ctx: Context,
        agent: AgentArg,
        session: SessionArg = DEFAULT_SESSION,
        limit: Annotated[int, Field(ge=1, le=500)] = 50,
    ) -> list[HistoryLine]:
        """The latest messages of an agent's session, oldest first."""
        async with tools(ctx) as hub:
            return await hub.read_history(agent, session, limit)

    @server.tool()
    async def list_sessions(ctx: Context, agent: AgentArg) -> JsonValue:
        """An agent's sessions: key, title, last activity, message and unread counts."""
        async with tools(ctx) as hub:
            return await hub.list_sessions(agent)

    @server.tool()
    async def inbox(
        ctx: Context,
        agent: AgentArg,
        unread_only: bool = True,
        limit: Annotated[int, Field(ge=1, le=200)] = 20,
    ) -> list[InboxMessage]:
        """The messages other agents sent to an agent (its agent-mail inbox), oldest
        first; reading them here does not mark them read for the agent."""
        async with tools(ctx) as hub:
            return await hub.inbox(agent, unread_only, limit)

    return server
