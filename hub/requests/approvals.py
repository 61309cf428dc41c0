"""Requests about tool calls waiting for a person: `approvals.list` and `approvals.decide`.

Who may see an approval: the hub's owner sees all of them; another caller sees none until the
conversations it may see are known to this table (per-person sessions), so a guest can neither
list nor decide another person's approval (`forbidden`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from hub.approvals import ApprovalAnswer, Decision, PendingApproval, Visible
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


def visible_to(caller: Caller) -> Visible:
    """What `caller` may see of pending approvals."""
    if caller.owner:
        return lambda pending: True
    return lambda pending: False


def decider(caller: Caller) -> str:
    """How `approval_resolved.by` names the caller."""
    if caller.surface == "control":
        return "ctl"
    return f"{caller.surface}:{caller.device_id}" if caller.device_id else caller.surface


@request("approvals.list", ApprovalsListParams, ApprovalsAnswer)
async def approvals_list(
    host: RequestHost, caller: Caller, params: ApprovalsListParams
) -> ApprovalsAnswer:
    pending = host.need_hub().approvals.pending(visible_to(caller))
    if params.agent_id is not None:
        pending = [p for p in pending if p.agent_id == params.agent_id]
    return ApprovalsAnswer(approvals=pending)


@request("approvals.decide", DecideParams, ApprovalAnswer)
async def approvals_decide(
    host: RequestHost, caller: Caller, params: DecideParams
) -> ApprovalAnswer:
    approvals = host.need_hub().approvals
    return approvals.decide(
        params.approval_id, params.decision, decider(caller), visible=visible_to(caller)
    )
