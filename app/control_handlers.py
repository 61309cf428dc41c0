"""The control socket's own methods: what only the running process can answer (its status
with pid and uptime, the session files on disk, shutdown). Everything else a ctl command asks
goes through the hub's request table."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pydantic import BaseModel

from app.control_protocol import (
    SessionInfo,
    SessionsParams,
    SessionsResult,
    ShutdownResult,
    StatusResult,
)
from hub.requests import NoParams, RequestHost
from hub.sessions import load_session

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
        result: list[SessionInfo] = []
        for aid in ids:
            current = hub.agent(aid).session if aid in hub.agents else None
            for session_id in hub.store.session_ids(aid):
                session = await asyncio.to_thread(
                    load_session, hub.store.agent_dir(aid) / f"{session_id}.jsonl"
                )
                result.append(
                    SessionInfo(
                        agent_id=aid,
                        session_id=session_id,
                        current=current is not None and current.session_id == session_id,
                        entries=len(session.entries),
                        created_at=session.header.created_at,
                    )
                )
        return SessionsResult(sessions=result)

    async def shutdown(host: RequestHost, _: BaseModel) -> ShutdownResult:
        ctx.request_shutdown()
        return ShutdownResult(stopping=True)

    return {
        "process.status": ProcessMethod(NoParams, status),
        "process.sessions": ProcessMethod(SessionsParams, sessions),
        "process.shutdown": ProcessMethod(NoParams, shutdown),
    }
