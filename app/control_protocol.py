"""The control socket's wire format: one JSON object per line, each way.

Request:  {"id": "1", "method": "history", "params": {"agentId": "main", "limit": 20}}
Response: {"id": "1", "ok": true, "result": …}
          {"id": "1", "ok": false, "error": {"code": "unknown_agent", "message": "no agent 'x'"}}

A request with `"stream": true` that waits for a run (`messages.send` with `wait`) gets each
event of that run first, one line each, then its response:
          {"id": "1", "event": {"type": "message_update", "runId": "r-…", …}}

Methods are those of the hub's request table (`hub.requests`) plus the process's own:
`process.status`, `process.sessions`, `process.shutdown`.
"""

from __future__ import annotations

from pydantic import Field, JsonValue

from hub.conversations import SessionInfo
from hub.health import HealthStatus, SubsystemHealth
from hub.hub import AgentInfo
from hub.requests import ConnectedDevice
from hub.wire import WireModel

MAX_LINE_BYTES = 1 << 20


class CtlRequest(WireModel):
    id: str = Field(min_length=1, max_length=64)
    method: str = Field(min_length=1, max_length=64)
    params: dict[str, JsonValue] = Field(default_factory=dict)
    stream: bool = False


class CtlEvent(WireModel):
    """An event of the run a streaming request waits for, sent before its response."""

    id: str
    event: dict[str, JsonValue]


class CtlError(WireModel):
    code: str
    message: str


class CtlResponse(WireModel):
    id: str
    ok: bool
    result: JsonValue = None
    error: CtlError | None = None


class StatusResult(WireModel):
    pid: int
    mode: str
    uptime_seconds: float
    health: HealthStatus
    draining: bool
    model: str | None
    agents: list[AgentInfo]
    subsystems: list[SubsystemHealth]
    devices: list[ConnectedDevice]


class SessionsParams(WireModel):
    """Which sessions `ctl sessions` lists: of one agent, archived ones, titles matching."""

    agent_id: str | None = None
    archived: bool = False
    search: str | None = None


class AgentSession(SessionInfo):
    agent_id: str


class SessionsResult(WireModel):
    sessions: list[AgentSession]


class ShutdownResult(WireModel):
    stopping: bool
