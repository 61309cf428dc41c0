"""Agent events: the one typed model every surface receives.

JSON shape (camelCase, stable; see docs/events.md):
    {"type": "message_update", "agentId": "main", "runId": "r-…", "seq": 12, "ts": 1732190000123,
     "messageId": "m-…", "role": "assistant", "text": "Hello wor", "delta": "wor"}

`seq` increases by one per event, per agent, and never repeats across restarts (the session
records each run's end; after a crash mid-run it jumps ahead), so a client can detect a gap and
refetch history. See docs/events.md.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from pydantic import Field, JsonValue, TypeAdapter

from hub.origin import Origin
from hub.wire import WireModel

Role = Literal["user", "assistant"]
RunStatus = Literal["completed", "aborted", "failed", "interrupted"]


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch, the timestamp unit of events and entries."""
    return time.time_ns() // 1_000_000


MAIN_SESSION = "main"


class EventBase(WireModel):
    agent_id: str
    run_id: str
    seq: int
    ts: int = Field(default_factory=now_ms)
    # The conversation the run belongs to (see docs/sessions.md, "Session keys").
    session_key: str = MAIN_SESSION


class AgentStart(EventBase):
    """A run began. `origin` says which surface wrote the turn; `model` which model answers it
    (the session's choice when the run started)."""

    type: Literal["agent_start"] = "agent_start"
    origin: Origin
    model: str | None = None


class AgentEnd(EventBase):
    """A run ended; `status` says how. Always the last event of a run."""

    type: Literal["agent_end"] = "agent_end"
    status: RunStatus
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0


class MessageStart(EventBase):
    type: Literal["message_start"] = "message_start"
    message_id: str
    role: Role


class MessageUpdate(EventBase):
    """`text` is the full text so far; `delta` what this update added."""

    type: Literal["message_update"] = "message_update"
    message_id: str
    role: Role
    text: str
    delta: str


class MessageEnd(EventBase):
    """`text` is the final text. `aborted` is true when the run stopped mid-message."""

    type: Literal["message_end"] = "message_end"
    message_id: str
    role: Role
    text: str
    aborted: bool = False


class ToolExecutionStart(EventBase):
    type: Literal["tool_execution_start"] = "tool_execution_start"
    tool_call_id: str
    tool_name: str
    args: JsonValue


class ToolExecutionEnd(EventBase):
    type: Literal["tool_execution_end"] = "tool_execution_end"
    tool_call_id: str
    tool_name: str
    args: JsonValue
    result: JsonValue
    is_error: bool


class CompactionStart(EventBase):
    type: Literal["compaction_start"] = "compaction_start"
    reason: str


class CompactionEnd(EventBase):
    type: Literal["compaction_end"] = "compaction_end"
    reason: str
    removed: int
    kept: int


class AgentError(EventBase):
    """A run failed. `code` is stable for clients; `message` says what to fix."""

    type: Literal["agent_error"] = "agent_error"
    code: str
    message: str
    retryable: bool


class ApprovalRequest(EventBase):
    """A tool call under the `ask` policy waits for a person: `args` as shown to them,
    `expiresAt` (ms since the epoch) after which it counts as denied. Answer with the
    `approvals.decide` request."""

    type: Literal["approval_request"] = "approval_request"
    approval_id: str
    tool: str
    args: JsonValue
    expires_at: int


class ApprovalResolved(EventBase):
    """What became of an approval: `approved`, `denied` or `expired`, and `by` whom."""

    type: Literal["approval_resolved"] = "approval_resolved"
    approval_id: str
    decision: Literal["approved", "denied", "expired"]
    by: str


class SessionDeleted(EventBase):
    """Session `sessionKey` was deleted (`sessions.delete`): its transcript is gone. A client
    drops it from its list and, when it shows it, moves to another session. `runId` names the
    deletion (no run is behind it)."""

    type: Literal["session_deleted"] = "session_deleted"


AgentEvent = Annotated[
    AgentStart
    | AgentEnd
    | MessageStart
    | MessageUpdate
    | MessageEnd
    | ToolExecutionStart
    | ToolExecutionEnd
    | CompactionStart
    | CompactionEnd
    | AgentError
    | ApprovalRequest
    | ApprovalResolved
    | SessionDeleted,
    Field(discriminator="type"),
]
EventType = Literal[
    "agent_start",
    "agent_end",
    "message_start",
    "message_update",
    "message_end",
    "tool_execution_start",
    "tool_execution_end",
    "compaction_start",
    "compaction_end",
    "agent_error",
    "approval_request",
    "approval_resolved",
    "session_deleted",
]
MessageEvent = MessageStart | MessageUpdate | MessageEnd

EVENT_ADAPTER: TypeAdapter[AgentEvent] = TypeAdapter(AgentEvent)


class ReadGap(WireModel):
    """`read()` dropped events because its reader fell behind (drop-oldest policy).

    The reader learns exactly which seqs it missed and should refetch history.
    """

    type: Literal["read_gap"] = "read_gap"
    agent_id: str
    dropped: int
    first_seq: int
    last_seq: int


ReadItem = AgentEvent | ReadGap
