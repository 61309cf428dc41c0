"""The control socket's wire format: one JSON object per line, each way.

Request:  {"id": "1", "method": "history", "params": {"agentId": "main", "limit": 20}}
Response: {"id": "1", "ok": true, "result": …}
          {"id": "1", "ok": false, "error": {"code": "unknown_agent", "message": "no agent 'x'"}}
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, JsonValue

from hub.access import Invite, PendingRequest
from hub.health import HealthStatus, SubsystemHealth
from hub.hub import AgentInfo
from hub.wire import WireModel

Method = Literal[
    "status",
    "agents",
    "sessions",
    "history",
    "devices.list",
    "devices.revoke",
    "pair.new",
    "pair.list",
    "pair.approve",
    "pair.deny",
    "approvals.list",
    "approvals.approve",
    "approvals.deny",
    "shutdown",
]
MAX_LINE_BYTES = 1 << 20


class CtlParams(WireModel):
    agent_id: str | None = None
    after_seq: int | None = Field(default=None, ge=0)
    limit: int | None = Field(default=None, ge=1, le=10_000)
    device_id: str | None = None
    code: str | None = None
    approval_id: str | None = None
    for_session: bool = False


class CtlRequest(WireModel):
    id: str = Field(min_length=1, max_length=64)
    method: Method
    params: CtlParams = Field(default_factory=CtlParams)


class CtlError(WireModel):
    code: str
    message: str


class CtlResponse(WireModel):
    id: str
    ok: bool
    result: JsonValue = None
    error: CtlError | None = None


class ConnectedDevice(WireModel):
    device_id: str
    kind: Literal["hub", "client"]
    label: str = ""
    connected_since: float | None = None


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


class SessionInfo(WireModel):
    agent_id: str
    session_id: str
    current: bool
    entries: int
    created_at: int


class DeviceInfo(WireModel):
    device_id: str
    label: str
    paired_at: float
    connected: bool


class PairNewResult(WireModel):
    invite: Invite
    url: str | None = None


class PairListResult(WireModel):
    pending: list[PendingRequest]
    invites: list[Invite]


class RevokeResult(WireModel):
    device_id: str
    revoked: bool


class ShutdownResult(WireModel):
    stopping: bool
