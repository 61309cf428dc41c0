"""The hub's request surface, written once: the params and answers every surface serves
(gateway requests, desktop bridge calls, the control socket's pairing decisions) and
`HubRequests`, the logic behind them.

Surfaces keep their own transport (frames, bridge replies, control lines) and map errors to
their reply shape: an unknown agent raises `UnknownAgentError` (code `unknown_agent`), a
refused pairing step `AccessError` (its own code).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from hub.access import AccessStore, PendingRequest
from hub.health import HealthReport
from hub.hub import AgentInfo, Hub
from hub.sessions import HistoryEntry
from hub.wire import WireModel

AgentId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
PairingCode = Annotated[str, StringConstraints(min_length=1, max_length=64)]


# -- params -------------------------------------------------------------------------------------


class AgentParams(WireModel):
    agent_id: AgentId


class HistoryParams(WireModel):
    """Up to `limit` entries, all older than seq `before` when it is given."""

    agent_id: AgentId
    limit: Annotated[int, Field(ge=1, le=500)] = 100
    before: int | None = None


class CodeParams(WireModel):
    code: PairingCode


# -- answers ------------------------------------------------------------------------------------


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


class PairingAnswer(WireModel):
    pending: list[PendingRequest]


class DecisionAnswer(WireModel):
    """An approve/deny outcome. It has no token field on purpose: the device that asked
    receives its token through its own pairing socket, never through whoever decided."""

    code: str
    kind: str
    subject: str
    label: str
    approved: bool


def decide(access: AccessStore, code: str, *, approved: bool) -> DecisionAnswer:
    """Approve or deny the pending request `code` (raises `AccessError` if it cannot be)."""
    decision = access.approve(code) if approved else access.deny(code)
    request = decision.request
    return DecisionAnswer(
        code=request.code,
        kind=request.kind,
        subject=request.subject,
        label=request.label,
        approved=decision.approved,
    )


class HubRequests:
    """What a client may ask the hub, whatever surface it comes through."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def agents(self) -> AgentsAnswer:
        return AgentsAnswer(agents=self.hub.agents_info())

    def history(self, params: HistoryParams) -> HistoryAnswer:
        agent = self.hub.agent(params.agent_id)
        return HistoryAnswer(
            agent_id=agent.agent_id,
            session_id=agent.session.session_id,
            last_seq=agent.last_seq,
            entries=agent.history(limit=params.limit, before=params.before),
        )

    def status(self) -> StatusAnswer:
        return StatusAnswer(agents=self.hub.agents_info(), health=self.hub.health.report())

    def abort(self, params: AgentParams) -> AbortAnswer:
        return AbortAnswer(aborted=self.hub.agent(params.agent_id).abort())

    def pending(self) -> PairingAnswer:
        return PairingAnswer(pending=self.hub.access.pending())

    def decide(self, code: str, approved: bool) -> DecisionAnswer:
        return decide(self.hub.access, code, approved=approved)
