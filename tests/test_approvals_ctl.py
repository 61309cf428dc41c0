"""Approvals through the one request table: `approvals.list` / `approvals.decide` from the
control socket (`agenthub ctl approvals …`) and from other callers, and the hub denying pending
approvals when it stops."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import JsonValue

from app import ctl
from app.cli import build_parser
from app.control_handlers import ProcessContext, process_methods
from app.control_protocol import CtlResponse
from app.control_server import ControlServer
from app.ctl_args import ctl_request
from hub.approvals import ApprovalAnswer, CallContext, EventBuilder
from hub.echo import EchoModel
from hub.errors import CodedError
from hub.events import AgentEvent, ApprovalRequest, ApprovalResolved
from hub.hub import Hub
from hub.requests import Caller, RequestHost, dispatch

GUEST = Caller(surface="web", device_id="web-guest", owner=False)
OWNER_WEB = Caller(surface="web", device_id="d-1", owner=True)


@pytest.fixture
async def served(data_dir: Path) -> AsyncIterator[tuple[Hub, ControlServer]]:
    hub = Hub(data_dir, EchoModel)
    host = RequestHost(access=hub.access, health=hub.health, hub=hub)
    process = process_methods(ProcessContext(mode="serve", request_shutdown=lambda: None))
    server = ControlServer(data_dir / "ctl.sock", host, process)
    await server.start()
    yield hub, server
    await server.stop()
    await hub.close()


async def ask(server: ControlServer, method: str, **params: JsonValue) -> CtlResponse:
    return await asyncio.to_thread(ctl.call, server.path, method, params)


class Waiting:
    """A tool call waiting for approval, with the events it announced."""

    def __init__(self, hub: Hub, command: str, session_key: str = "main") -> None:
        self.events: list[AgentEvent] = []
        self.asked = asyncio.Event()
        context = CallContext("main", "r-1", session_key, "s-1", self.announce)
        self.task: asyncio.Task[ApprovalAnswer] = asyncio.create_task(
            hub.approvals.ask(context, "shell", {"command": command})
        )

    def announce(self, build: EventBuilder) -> None:
        self.events.append(build(len(self.events) + 1))
        self.asked.set()

    async def approval_id(self) -> str:
        await self.asked.wait()
        request = self.events[0]
        assert isinstance(request, ApprovalRequest)
        return request.approval_id


async def test_ctl_lists_approves_and_denies(served: tuple[Hub, ControlServer]) -> None:
    hub, server = served
    first, second = Waiting(hub, "ls -la"), Waiting(hub, "rm -rf ~")
    first_id, second_id = await first.approval_id(), await second.approval_id()
    listing = await ask(server, "approvals.list")
    assert listing.ok, listing.error
    text = ctl.render("approvals.list", listing.result)
    assert first_id in text and "ls -la" in text
    assert second_id in text and "rm -rf ~" in text
    approved = await ask(server, "approvals.decide", approvalId=first_id, decision="approve")
    assert ctl.render("approvals.decide", approved.result) == f"{first_id} approved"
    denied = await ask(server, "approvals.decide", approvalId=second_id, decision="deny")
    assert ctl.render("approvals.decide", denied.result) == f"{second_id} denied"
    assert ((await first.task).decision, (await second.task).decision) == ("approved", "denied")
    resolved = first.events[-1]
    assert isinstance(resolved, ApprovalResolved) and resolved.by == "ctl"
    empty = await ask(server, "approvals.list")
    assert ctl.render("approvals.list", empty.result) == "no pending approvals"


async def test_refusals_have_codes(served: tuple[Hub, ControlServer]) -> None:
    hub, server = served
    missing = await ask(server, "approvals.decide", decision="approve")
    assert missing.error is not None and missing.error.code == "invalid_params"
    odd = await ask(server, "approvals.decide", approvalId="ap-1", decision="maybe")
    assert odd.error is not None and odd.error.code == "invalid_params"
    unknown = await ask(server, "approvals.decide", approvalId="ap-nope", decision="deny")
    assert unknown.error is not None and unknown.error.code == "unknown_approval"
    waiting = Waiting(hub, "ls")
    approval_id = await waiting.approval_id()
    await ask(server, "approvals.decide", approvalId=approval_id, decision="deny")
    late = await ask(server, "approvals.decide", approvalId=approval_id, decision="approve")
    assert late.error is not None and late.error.code == "already_decided"
    assert "already denied by ctl" in late.error.message
    assert (await waiting.task).decision == "denied"


async def test_a_guest_can_neither_see_nor_decide(data_dir: Path) -> None:
    hub = Hub(data_dir, EchoModel)
    host = RequestHost(access=hub.access, health=hub.health, hub=hub)
    waiting = Waiting(hub, "rm -rf ~")
    approval_id = await waiting.approval_id()
    listing = await dispatch(host, GUEST, "approvals.list", {})
    assert json.loads(listing.model_dump_json()) == {"approvals": []}
    with pytest.raises(CodedError) as refused:
        await dispatch(
            host, GUEST, "approvals.decide", {"approvalId": approval_id, "decision": "approve"}
        )
    assert refused.value.code == "forbidden"
    assert not waiting.task.done()
    # The owner, from the web, decides; the event names the device.
    await dispatch(
        host, OWNER_WEB, "approvals.decide", {"approvalId": approval_id, "decision": "deny"}
    )
    answer = await waiting.task
    assert (answer.decision, answer.by) == ("denied", "web:d-1")
    await hub.close()


async def test_a_guest_sees_and_decides_only_its_own_sessions_approvals(data_dir: Path) -> None:
    hub = Hub(data_dir, EchoModel)
    host = RequestHost(access=hub.access, health=hub.health, hub=hub)
    hub.agent("main").sessions.join("web:guest-chat", "web:web-guest")
    theirs, owners = Waiting(hub, "ls", "web:guest-chat"), Waiting(hub, "rm -rf ~")
    their_id, owner_id = await theirs.approval_id(), await owners.approval_id()
    listing = await dispatch(host, GUEST, "approvals.list", {})
    assert [a["approvalId"] for a in json.loads(listing.model_dump_json())["approvals"]] == [
        their_id
    ]
    with pytest.raises(CodedError) as refused:
        await dispatch(
            host, GUEST, "approvals.decide", {"approvalId": owner_id, "decision": "approve"}
        )
    assert refused.value.code == "forbidden"
    await dispatch(host, GUEST, "approvals.decide", {"approvalId": their_id, "decision": "approve"})
    assert ((await theirs.task).decision, (await theirs.task).by) == ("approved", "web:web-guest")
    assert not owners.task.done()
    await hub.close()
    assert (await owners.task).by == "restart"


async def test_stopping_the_hub_denies_pending_approvals(data_dir: Path) -> None:
    hub = Hub(data_dir, EchoModel)
    waiting = Waiting(hub, "ls")
    await waiting.approval_id()
    await hub.close()
    answer = await waiting.task
    assert (answer.decision, answer.by) == ("denied", "restart")


@pytest.mark.parametrize(
    ("argv", "method", "params"),
    [
        (["approvals", "list"], "approvals.list", {}),
        (
            ["approvals", "approve", "ap-1"],
            "approvals.decide",
            {"approvalId": "ap-1", "decision": "approve"},
        ),
        (
            ["approvals", "approve", "ap-1", "--session"],
            "approvals.decide",
            {"approvalId": "ap-1", "decision": "approve_session"},
        ),
        (
            ["approvals", "deny", "ap-1"],
            "approvals.decide",
            {"approvalId": "ap-1", "decision": "deny"},
        ),
    ],
)
def test_command_line(argv: list[str], method: str, params: dict[str, JsonValue]) -> None:
    args = build_parser().parse_args(["ctl", *argv])
    assert ctl_request(args) == (method, params)
