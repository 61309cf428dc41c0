"""Requests about tool calls waiting for a person: `approvals.list` and `approvals.decide`.

Who may see an approval: whoever may see its session (`Conversations.may_see`): the hub's owner
sees all of them, a guest (a web device, or a chat user pressing a button) only those of the
sessions it takes part in; an approval of any other session is neither listed nor decided
(`forbidden`). `by` names who decided: `ctl`, `web:<deviceId>`, a chat user's
`<channel>:<userId>`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from hub.approvals import ApprovalAnswer, Decision, PendingApproval, Visible
from hub.hub import Hub
from hub.requests.sessions import viewer_of_caller
from hub.requests.table import Caller, RequestHost, request
from hub.wire import WireModel

ApprovalId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class ApprovalsListParams(WireModel):
    agent_id: str | None = None


class ApprovalsAnswer(WireModel):
    approvals: list[PendingApproval]


class DecideParams(WireModel):
    approval_id: ApprovalId
    decision: Decision


def visible_to(caller: Caller, hub: Hub) -> Visible:
    """What `caller` may see of pending approvals: those of the sessions it may see."""
    if caller.owner:
        return lambda pending: True
    viewer = viewer_of_caller(caller)

    def visible(pending: PendingApproval) -> bool:
        agent = hub.agents.get(pending.agent_id)
        meta = agent.sessions.meta(pending.session_key) if agent is not None else None
        return hub.sessions.may_see(meta, viewer)

    return visible


def decider(caller: Caller) -> str:
    """How `approval_resolved.by` names the caller."""
    if caller.surface == "control":
        return "ctl"
    if caller.device_id:
        return f"{caller.surface}:{caller.device_id}"
    return caller.identity or caller.surface


@request("approvals.list", ApprovalsListParams, ApprovalsAnswer)
async def approvals_list(
    host: RequestHost, caller: Caller, params: ApprovalsListParams
) -> ApprovalsAnswer:
    hub = host.need_hub()
    pending = hub.approvals.pending(visible_to(caller, hub))
    if params.agent_id is not None:
        pending = [p for p in pending if p.agent_id == params.agent_id]
    return ApprovalsAnswer(approvals=pending)


@request("approvals.decide", DecideParams, ApprovalAnswer)
async def approvals_decide(
    host: RequestHost, caller: Caller, params: DecideParams
) -> ApprovalAnswer:
    hub = host.need_hub()
    return hub.approvals.decide(
        params.approval_id, params.decision, decider(caller), visible=visible_to(caller, hub)
    )
