"""approvals.decide and approvals.list for chat users through the one request table: a chat
user who takes part in the session decides and `by` names them; one who may not see the
session is refused with `forbidden`, sees nothing listed, and the approval keeps waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.approvals import ApprovalAnswer, Approvals, CallContext
from hub.echo import EchoModel
from hub.errors import CodedError
from hub.events import AgentEvent, ApprovalRequest
from hub.hub import Hub
from hub.requests import Caller, RequestHost, dispatch
from hub.requests.approvals import ApprovalsAnswer

PEER = "telegram:dm:42"


def chat_user(user_id: str) -> Caller:
    return Caller(surface="channel", identity=f"telegram:{user_id}")


async def asked_in(hub: Hub, session_key: str) -> tuple[str, asyncio.Task[ApprovalAnswer]]:
    """An approval waiting in `session_key` of agent main: its id and the asking task."""
    asked = asyncio.Event()
    events: list[AgentEvent] = []

    def announce(build: object) -> None:
        event = build(len(events) + 1)  # type: ignore[operator]
        events.append(event)
        if isinstance(event, ApprovalRequest):
            asked.set()

    context = CallContext("main", "r-1", session_key, "s-1", announce)
    task = asyncio.create_task(hub.approvals.ask(context, "shell", {"command": "ls"}))
    await asked.wait()
    request = next(e for e in events if isinstance(e, ApprovalRequest))
    return request.approval_id, task


@pytest.fixture
async def hub(data_dir: Path) -> AsyncIterator[Hub]:
    hub = Hub(data_dir, EchoModel, approvals=Approvals(timeout=30))
    hub.default_agent.sessions.join(PEER, "telegram:42")
    yield hub
    await hub.close()


async def decide(hub: Hub, caller: Caller, approval_id: str) -> ApprovalAnswer:
    host = RequestHost(access=hub.access, health=hub.health, hub=hub)
    params = {"approvalId": approval_id, "decision": "approve"}
    answer = await dispatch(host, caller, "approvals.decide", params)
    assert isinstance(answer, ApprovalAnswer)
    return answer


async def listed(hub: Hub, caller: Caller) -> list[str]:
    host = RequestHost(access=hub.access, health=hub.health, hub=hub)
    answer = await dispatch(host, caller, "approvals.list", {})
    assert isinstance(answer, ApprovalsAnswer)
    return [a.approval_id for a in answer.approvals]


async def test_the_sessions_own_chat_user_decides_and_is_named(hub: Hub) -> None:
    approval_id, task = await asked_in(hub, PEER)
    assert await listed(hub, chat_user("42")) == [approval_id]
    answer = await decide(hub, chat_user("42"), approval_id)
    assert (answer.decision, answer.by) == ("approved", "telegram:42")
    assert (await task).by == "telegram:42"


async def test_a_chat_user_who_may_not_see_the_session_is_refused(hub: Hub) -> None:
    approval_id, task = await asked_in(hub, PEER)
    for stranger in (chat_user("666"), Caller(surface="channel")):
        assert await listed(hub, stranger) == []
        with pytest.raises(CodedError) as refused:
            await decide(hub, stranger, approval_id)
        assert refused.value.code == "forbidden"
        assert "cannot see" in refused.value.message and "ls" not in refused.value.message
    # Nor the owner's own conversation.
    main_id, main_task = await asked_in(hub, "main")
    with pytest.raises(CodedError) as refused:
        await decide(hub, chat_user("42"), main_id)
    assert refused.value.code == "forbidden"
    assert not task.done() and not main_task.done()
    owner = Caller(surface="channel", identity="telegram:1", owner=True)
    assert (await decide(hub, owner, approval_id)).by == "telegram:1"
    assert (await decide(hub, Caller(surface="control", owner=True), main_id)).by == "ctl"
    await asyncio.gather(task, main_task)
