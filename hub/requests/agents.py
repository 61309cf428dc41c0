"""Requests about agents: list, status, history, abort."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from hub.bindings import Binding
from hub.events import MAIN_SESSION
from hub.health import HealthReport
from hub.hub import AgentInfo
from hub.requests.sessions import viewer_of_caller
from hub.requests.table import AgentId, Caller, NoParams, RequestHost, SessionKey, request
from hub.sessions import HistoryEntry
from hub.wire import WireModel


class AgentParams(WireModel):
    agent_id: AgentId
    session_key: SessionKey = MAIN_SESSION


class HistoryParams(WireModel):
    """Up to `limit` entries, older than seq `before` and newer than seq `after` when given
    (the newest `limit` of them), of `agent_id` (default: the first agent)."""

    agent_id: AgentId | None = None
    limit: Annotated[int, Field(ge=1, le=500)] = 100
    before: int | None = None
    after: int | None = None
    session_key: SessionKey = MAIN_SESSION
    # An older session of the key (`sessions.new` keeps them readable); default its current.
    session_id: SessionKey | None = None


class AgentsAnswer(WireModel):
    agents: list[AgentInfo]


class HistoryAnswer(WireModel):
    """Entries oldest first. `truncated`: older entries were left out (to fit one frame)."""

    agent_id: str
    session_id: str
    last_seq: int
    entries: list[HistoryEntry]
    truncated: bool = False


class StatusAnswer(WireModel):
    agents: list[AgentInfo]
    health: HealthReport


class AbortAnswer(WireModel):
    aborted: bool


@request("agents.list", NoParams, AgentsAnswer)
async def agents_list(host: RequestHost, caller: Caller, params: NoParams) -> AgentsAnswer:
    return AgentsAnswer(agents=host.need_hub().agents_info())


@request("status", NoParams, StatusAnswer)
async def status(host: RequestHost, caller: Caller, params: NoParams) -> StatusAnswer:
    agents = host.hub.agents_info() if host.hub is not None else []
    return StatusAnswer(agents=agents, health=host.health.report())


@request("history", HistoryParams, HistoryAnswer)
async def history(host: RequestHost, caller: Caller, params: HistoryParams) -> HistoryAnswer:
    hub = host.need_hub()
    agent = hub.agent(params.agent_id) if params.agent_id else hub.default_agent
    found = hub.sessions.history(
        agent,
        viewer_of_caller(caller),
        params.session_key,
        limit=params.limit,
        before=params.before,
        after=params.after,
        session_id=params.session_id,
    )
    return HistoryAnswer(
        agent_id=agent.agent_id,
        session_id=found.session_id,
        last_seq=found.last_seq,
        entries=found.entries,
    )


@request("abort", AgentParams, AbortAnswer)
async def abort(host: RequestHost, caller: Caller, params: AgentParams) -> AbortAnswer:
    hub = host.need_hub()
    agent = hub.agent(params.agent_id)
    hub.sessions.check_write(agent, viewer_of_caller(caller), params.session_key)
    return AbortAnswer(aborted=agent.abort(params.session_key))


class BindingsAnswer(WireModel):
    """The rules that route chats to agents, in the order they are tried, and the agent a
    chat no rule matches goes to."""

    bindings: list[Binding]
    default_agent: str


@request("bindings.list", NoParams, BindingsAnswer)
async def bindings_list(host: RequestHost, caller: Caller, params: NoParams) -> BindingsAnswer:
    hub = host.need_hub()
    return BindingsAnswer(bindings=list(hub.bindings), default_agent=hub.default_agent.agent_id)
