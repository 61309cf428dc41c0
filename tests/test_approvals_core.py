"""hub/approvals.py: asking, deciding once, expiry, abort, shutdown, session grants, visibility."""

from __future__ import annotations

import asyncio

import pytest

from hub.approvals import ApprovalAnswer, ApprovalError, Approvals, CallContext, EventBuilder
from hub.events import AgentEvent, ApprovalRequest, ApprovalResolved


class Stream:
    """Stands in for the agent: stamps seqs and keeps what was announced."""

    def __init__(self) -> None:
        self.events: list[AgentEvent] = []
        self.requested = asyncio.Event()

    def announce(self, build: EventBuilder) -> None:
        event = build(len(self.events) + 1)
        self.events.append(event)
        if isinstance(event, ApprovalRequest):
            self.requested.set()

    def context(self, session_key: str = "main") -> CallContext:
        return CallContext("main", "r-1", session_key, "s-1", self.announce)

    def request(self) -> ApprovalRequest:
        return next(e for e in self.events if isinstance(e, ApprovalRequest))

    def resolved(self) -> ApprovalResolved:
        return next(e for e in self.events if isinstance(e, ApprovalResolved))


async def asking(
    approvals: Approvals, stream: Stream, tool: str = "shell"
) -> asyncio.Task[ApprovalAnswer]:
    task = asyncio.create_task(approvals.ask(stream.context(), tool, {"command": "ls"}))
    await stream.requested.wait()
    return task


async def test_request_then_decision_then_resolved_event() -> None:
    approvals, stream = Approvals(), Stream()
    task = await asking(approvals, stream)
    request = stream.request()
    assert (request.tool, request.args, request.session_key) == ("shell", {"command": "ls"}, "main")
    assert request.expires_at > request.ts
    assert [p.approval_id for p in approvals.pending()] == [request.approval_id]
    answer = approvals.decide(request.approval_id, "approve", "ctl")
    assert (answer.decision, answer.by) == ("approved", "ctl")
    assert await task == answer
    resolved = stream.resolved()
    assert (resolved.approval_id, resolved.decision, resolved.by) == (
        request.approval_id,
        "approved",
        "ctl",
    )
    assert [e.seq for e in stream.events] == [1, 2]
    assert approvals.pending() == []


async def test_first_decision_wins() -> None:
    approvals, stream = Approvals(), Stream()
    task = await asking(approvals, stream)
    approval_id = stream.request().approval_id
    approvals.decide(approval_id, "deny", "web:d-1")
    with pytest.raises(ApprovalError) as refused:
        approvals.decide(approval_id, "approve", "telegram:111")
    assert refused.value.code == "already_decided"
    assert "denied by web:d-1" in refused.value.message
    assert (await task).decision == "denied"
    assert [e.type for e in stream.events] == ["approval_request", "approval_resolved"]


async def test_unknown_approval_is_refused() -> None:
    with pytest.raises(ApprovalError) as refused:
        Approvals().decide("ap-nope", "approve", "ctl")
    assert refused.value.code == "unknown_approval"


async def test_expiry_denies() -> None:
    approvals, stream = Approvals(timeout=0.05), Stream()
    answer = await approvals.ask(stream.context(), "shell", {"command": "ls"})
    assert (answer.decision, answer.by) == ("expired", "timeout")
    assert stream.resolved().decision == "expired"
    assert approvals.pending() == []


async def test_abort_while_waiting_resolves_as_denied() -> None:
    approvals, stream = Approvals(), Stream()
    task = await asking(approvals, stream)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    resolved = stream.resolved()
    assert (resolved.decision, resolved.by) == ("denied", "abort")
    assert approvals.pending() == []


async def test_close_denies_pending_and_later_asks() -> None:
    approvals, stream = Approvals(), Stream()
    task = await asking(approvals, stream)
    assert approvals.close() == 1
    assert (await task).decision == "denied"
    assert stream.resolved().by == "restart"
    later = await approvals.ask(stream.context(), "shell", {"command": "ls"})
    assert later.decision == "denied"


async def test_approve_session_covers_later_calls_of_that_tool_in_that_session() -> None:
    approvals, stream = Approvals(), Stream()
    task = await asking(approvals, stream)
    approvals.decide(stream.request().approval_id, "approve_session", "ctl")
    assert (await task).decision == "approved"
    again = await approvals.ask(stream.context(), "shell", {"command": "pwd"})
    assert (again.decision, again.by) == ("approved", "session")
    assert len(stream.events) == 2  # no new request for the granted tool
    other = Stream()
    pending = asyncio.create_task(approvals.ask(other.context("peer:42"), "shell", {}))
    await other.requested.wait()  # another session is asked again
    approvals.decide(other.request().approval_id, "deny", "ctl")
    assert (await pending).decision == "denied"


async def test_decider_who_cannot_see_the_session_is_refused() -> None:
    approvals, stream = Approvals(), Stream()
    task = await asking(approvals, stream)
    approval_id = stream.request().approval_id

    def only_their_own(pending: object) -> bool:
        return getattr(pending, "session_key", None) == "peer:42"

    assert approvals.pending(only_their_own) == []
    with pytest.raises(ApprovalError) as refused:
        approvals.decide(approval_id, "approve", "telegram:42", visible=only_their_own)
    assert refused.value.code == "forbidden"
    assert approvals.pending()  # still waiting for someone who may decide
    approvals.decide(approval_id, "deny", "owner")
    assert (await task).decision == "denied"
