"""What crosses the desktop bridge, as models (camelCase JSON, like every other surface).

JS -> Python: `window.pywebview.api.<method>(…)` calls answer a `BridgeReply`:
`{ok: true, payload}` or `{ok: false, error: {code, message}}` (the gateway's `response` shape),
so the UI handles both transports alike.

Python -> JS: one script per batch hands `agenthubDesktop.receive` a JSON array of `Push`
items: `stream` (an agent event or a `read_gap`, the web client's `{agentId, streamId, event}`
envelope) and `pairing` (the pending pairing requests, after any change).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, JsonValue, StringConstraints

from hub.access import PendingRequest
from hub.events import AgentEvent, ReadGap
from hub.health import HealthReport
from hub.hub import AgentInfo
from hub.sessions import HistoryEntry
from hub.wire import WireModel

AgentId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
PairingCode = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class BridgeError(WireModel):
    code: str
    message: str


class BridgeReply(WireModel):
    """The answer to every bridge call."""

    ok: bool
    payload: JsonValue = None
    error: BridgeError | None = None


# -- call parameters ----------------------------------------------------------------------------


class SendParams(WireModel):
    agent_id: AgentId
    text: str


class AgentParams(WireModel):
    agent_id: AgentId


class HistoryParams(WireModel):
    agent_id: AgentId
    limit: Annotated[int, Field(ge=1, le=500)] = 100
    before: int | None = None


class CodeParams(WireModel):
    code: PairingCode


# -- answers ------------------------------------------------------------------------------------


class SendAnswer(WireModel):
    run_id: str


class SubscribeAnswer(WireModel):
    """The agent's state when the subscription began; events after `last_seq` follow."""

    agent_id: str
    last_seq: int
    busy: bool


class AgentsAnswer(WireModel):
    agents: list[AgentInfo]


class HistoryAnswer(WireModel):
    """Entries oldest first (the same shape the web client gets from the hub)."""

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
    """An approve/deny outcome. The issued device token is never shown to the window: the
    device that asked receives it through its own pairing socket."""

    code: str
    approved: bool
    kind: str
    subject: str
    label: str


# -- pushes -------------------------------------------------------------------------------------


class StreamPush(WireModel):
    """One agent event (or a `read_gap`: events were dropped, refetch history)."""

    kind: Literal["stream"] = "stream"
    agent_id: str
    stream_id: str
    event: Annotated[AgentEvent, Field(discriminator="type")] | ReadGap


class PairingPush(WireModel):
    """The pending pairing requests changed (new, decided or expired)."""

    kind: Literal["pairing"] = "pairing"
    pending: list[PendingRequest]


Push = Annotated[StreamPush | PairingPush, Field(discriminator="kind")]
