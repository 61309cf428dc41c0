"""What each control request does, over the running process's parts."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.control_protocol import (
    ConnectedDevice,
    CtlParams,
    DeviceInfo,
    Method,
    PairListResult,
    PairNewResult,
    RevokeResult,
    SessionInfo,
    ShutdownResult,
    StatusResult,
)
from app.control_server import Handler, RequestError
from hub.access import AccessError, AccessStore
from hub.approvals import ApprovalAnswer, ApprovalError, Decision, PendingApproval
from hub.errors import UnknownAgentError
from hub.health import HealthRegistry
from hub.hub import AgentInfo, Hub
from hub.requests import DecisionAnswer, decide
from hub.sessions import HistoryEntry, load_session


@dataclass
class ControlContext:
    """The parts of the running process the control socket reports on and steers."""

    mode: str
    access: AccessStore
    health: HealthRegistry
    hub: Hub | None
    connected_devices: Callable[[], Awaitable[list[ConnectedDevice]]]
    invite_url: Callable[[str], str | None]
    request_shutdown: Callable[[], None]
    started: float = time.monotonic()


def build_handlers(ctx: ControlContext) -> dict[Method, Handler]:
    """The handler table; methods that need an agent answer `unavailable` without a hub."""

    def need_hub() -> Hub:
        if ctx.hub is None:
            raise RequestError("unavailable", f"no agents run in this process ({ctx.mode})")
        return ctx.hub

    def agent_id(params: CtlParams, hub: Hub) -> str:
        return params.agent_id or hub.default_agent.agent_id

    async def status(_: CtlParams) -> StatusResult:
        report = ctx.health.report()
        return StatusResult(
            pid=os.getpid(),
            mode=ctx.mode,
            uptime_seconds=round(time.monotonic() - ctx.started, 3),
            health=report.status,
            draining=report.draining,
            model=ctx.hub.default_agent.model.name if ctx.hub else None,
            agents=ctx.hub.agents_info() if ctx.hub else [],
            subsystems=report.subsystems,
            devices=await ctx.connected_devices(),
        )

    async def agents(_: CtlParams) -> list[AgentInfo]:
        return need_hub().agents_info()

    async def sessions(params: CtlParams) -> list[SessionInfo]:
        hub = need_hub()
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
        return result

    async def history(params: CtlParams) -> list[HistoryEntry]:
        hub = need_hub()
        try:
            agent = hub.agent(agent_id(params, hub))
        except UnknownAgentError as exc:
            raise RequestError(exc.code, str(exc)) from None
        return agent.history(limit=params.limit or 50, after=params.after_seq)

    async def devices_list(_: CtlParams) -> list[DeviceInfo]:
        online = {d.device_id for d in await ctx.connected_devices()}
        return [
            DeviceInfo(
                device_id=d.device_id,
                label=d.label,
                paired_at=d.paired_at,
                connected=d.device_id in online,
            )
            for d in ctx.access.devices()
        ]

    async def devices_revoke(params: CtlParams) -> RevokeResult:
        if not params.device_id:
            raise RequestError("invalid_request", "devices.revoke needs deviceId")
        revoked = ctx.access.revoke(params.device_id)
        if not revoked:
            raise RequestError("unknown_device", f"no paired device {params.device_id!r}")
        return RevokeResult(device_id=params.device_id, revoked=True)

    async def pair_new(_: CtlParams) -> PairNewResult:
        invite = ctx.access.create_invite()
        return PairNewResult(invite=invite, url=ctx.invite_url(invite.code))

    async def pair_list(_: CtlParams) -> PairListResult:
        return PairListResult(pending=ctx.access.pending(), invites=ctx.access.invites())

    def pair_decide(approve: bool) -> Handler:
        async def handler(params: CtlParams) -> DecisionAnswer:
            if not params.code:
                raise RequestError("invalid_request", "a pairing code is required")
            try:
                # The access store, not a Hub: a gateway-only process decides pairings too.
                return decide(ctx.access, params.code, approved=approve)
            except AccessError as exc:
                raise RequestError(exc.code, exc.message) from None

        return handler

    async def approvals_list(_: CtlParams) -> list[PendingApproval]:
        return need_hub().approvals.pending()

    def approvals_decide(approve: bool) -> Handler:
        async def handler(params: CtlParams) -> ApprovalAnswer:
            hub = need_hub()
            if not params.approval_id:
                raise RequestError("invalid_request", "an approval id is required")
            decision: Decision = (
                "deny" if not approve else "approve_session" if params.for_session else "approve"
            )
            try:
                # The control socket is the machine's owner: every approval is theirs to decide.
                return hub.approvals.decide(params.approval_id, decision, "ctl")
            except ApprovalError as exc:
                raise RequestError(exc.code, exc.message) from None

        return handler

    async def shutdown(_: CtlParams) -> ShutdownResult:
        ctx.request_shutdown()
        return ShutdownResult(stopping=True)

    return {
        "status": status,
        "agents": agents,
        "sessions": sessions,
        "history": history,
        "devices.list": devices_list,
        "devices.revoke": devices_revoke,
        "pair.new": pair_new,
        "pair.list": pair_list,
        "pair.approve": pair_decide(True),
        "pair.deny": pair_decide(False),
        "approvals.list": approvals_list,
        "approvals.approve": approvals_decide(True),
        "approvals.deny": approvals_decide(False),
        "shutdown": shutdown,
    }
