"""The control socket's own methods: what only the running process can answer (its status
with pid and uptime, the session files on disk, shutdown). Everything else a ctl command asks
goes through the hub's request table."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pydantic import BaseModel

from app.control_protocol import (
    AgentSession,
    SessionsParams,
    SessionsResult,
    ShutdownResult,
    StatusResult,
)
from hub.requests import NoParams, RequestHost
from hub.scopes import Viewer

ProcessHandler = Callable[[RequestHost, BaseModel], Awaitable[BaseModel]]


@dataclass(frozen=True)
class ProcessMethod:
    params: type[BaseModel]
    handler: ProcessHandler


@dataclass
class ProcessContext:
    """The running process the control socket reports on and steers."""

    mode: str
    request_shutdown: Callable[[], None]
    started: float = field(default_factory=time.monotonic)


def process_methods(ctx: ProcessContext) -> dict[str, ProcessMethod]:
    async def status(host: RequestHost, _: BaseModel) -> StatusResult:
        report = host.health.report()
        return StatusResult(
            pid=os.getpid(),
            mode=ctx.mode,
            uptime_seconds=round(time.monotonic() - ctx.started, 3),
            health=report.status,
            draining=report.draining,
            model=host.hub.default_agent.model.name if host.hub else None,
            agents=host.hub.agents_info() if host.hub else [],
            subsystems=report.subsystems,
            devices=await host.connected_devices(),
        )

    async def sessions(host: RequestHost, params: BaseModel) -> SessionsResult:
        assert isinstance(params, SessionsParams)
        hub = host.need_hub()
        ids = [params.agent_id] if params.agent_id else list(hub.agents)
        owner = Viewer(surface="control", owner=True)
        needle = (params.search or "").casefold()
        rows: list[AgentSession] = []
        for agent_id in ids:
            page = hub.sessions.list(
                hub.agent(agent_id), owner, limit=1_000_000, archived=params.archived
            )
            rows += [
                AgentSession(agent_id=agent_id, **info.model_dump())
                for info in page.sessions
                if needle in info.title.casefold() or needle in info.session_key.casefold()
            ]
        return SessionsResult(sessions=rows)

    async def shutdown(host: RequestHost, _: BaseModel) -> ShutdownResult:
        ctx.request_shutdown()
        return ShutdownResult(stopping=True)

    return {
        "process.status": ProcessMethod(NoParams, status),
        "process.sessions": ProcessMethod(SessionsParams, sessions),
        "process.shutdown": ProcessMethod(NoParams, shutdown),
    }
