"""`agenthub ctl approvals list|approve|deny` over the real control socket, and the hub
denying pending approvals when it stops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app import ctl
from app.cli import _ctl_request, build_parser
from app.control_handlers import ControlContext, build_handlers
from app.control_protocol import ConnectedDevice, CtlParams, CtlResponse, Method
from app.control_server import ControlServer
from hub.approvals import ApprovalAnswer, CallContext, EventBuilder
from hub.echo import EchoModel
from hub.events import AgentEvent, ApprovalRequest
from hub.hub import Hub


async def no_devices() -> list[ConnectedDevice]:
    return []


@pytest.fixture
async def served(data_dir: Path) -> AsyncIterator[tuple[Hub, ControlServer]]:
    hub = Hub(data_dir, EchoModel)
    context = ControlContext(
        mode="serve",
        access=hub.access,
        health=hub.health,
        hub=hub,
        connected_devices=no_devices,
        invite_url=lambda code: None,
        request_shutdown=lambda: None,
    )
    server = ControlServer(data_dir / "ctl.sock", build_handlers(context))
    await server.start()
    yield hub, server
    await server.stop()
    await hub.close()


async def ask(server: ControlServer, method: Method, **params: object) -> CtlResponse:
    return await asyncio.to_thread(ctl.call, server.path, method, CtlParams.model_validate(params))


async def waiting_call(hub: Hub, command: str) -> tuple[asyncio.Task[ApprovalAnswer], str]:
    asked = asyncio.Event()
    seen: list[AgentEvent] = []

    def announce(build: EventBuilder) -> None:
        seen.append(build(len(seen) + 1))
        asked.set()

    context = CallContext("main", "r-1", "main", "s-1", announce)
    task = asyncio.create_task(hub.approvals.ask(context, "shell", {"command": command}))
    await asked.wait()
    request = seen[0]
    assert isinstance(request, ApprovalRequest)
    return task, request.approval_id


async def test_list_approve_and_deny(served: tuple[Hub, ControlServer]) -> None:
    hub, server = served
    first, first_id = await waiting_call(hub, "ls -la")
    second, second_id = await waiting_call(hub, "rm -rf ~")
    listing = await ask(server, "approvals.list")
    assert listing.ok
    text = ctl.render("approvals.list", listing.result)
    assert first_id in text and "ls -la" in text
    assert second_id in text and "rm -rf ~" in text
    approved = await ask(server, "approvals.approve", approval_id=first_id)
    assert ctl.render("approvals.approve", approved.result) == f"{first_id} approved"
    denied = await ask(server, "approvals.deny", approval_id=second_id)
    assert ctl.render("approvals.deny", denied.result) == f"{second_id} denied"
    assert ((await first).decision, (await second).decision) == ("approved", "denied")
    empty = await ask(server, "approvals.list")
    assert ctl.render("approvals.list", empty.result) == "no pending approvals"


async def test_refusals_have_codes(served: tuple[Hub, ControlServer]) -> None:
    hub, server = served
    missing = await ask(server, "approvals.approve")
    assert missing.error is not None and missing.error.code == "invalid_request"
    unknown = await ask(server, "approvals.deny", approval_id="ap-nope")
    assert unknown.error is not None and unknown.error.code == "unknown_approval"
    task, approval_id = await waiting_call(hub, "ls")
    await ask(server, "approvals.deny", approval_id=approval_id)
    late = await ask(server, "approvals.approve", approval_id=approval_id)
    assert late.error is not None and late.error.code == "already_decided"
    assert "already denied by ctl" in late.error.message
    assert (await task).decision == "denied"


async def test_stopping_the_hub_denies_pending_approvals(data_dir: Path) -> None:
    hub = Hub(data_dir, EchoModel)
    task, _ = await waiting_call(hub, "ls")
    await hub.close()
    answer = await task
    assert (answer.decision, answer.by) == ("denied", "restart")


@pytest.mark.parametrize(
    ("argv", "method", "params"),
    [
        (["approvals", "list"], "approvals.list", CtlParams()),
        (["approvals", "approve", "ap-1"], "approvals.approve", CtlParams(approval_id="ap-1")),
        (
            ["approvals", "approve", "ap-1", "--session"],
            "approvals.approve",
            CtlParams(approval_id="ap-1", for_session=True),
        ),
        (["approvals", "deny", "ap-1"], "approvals.deny", CtlParams(approval_id="ap-1")),
    ],
)
def test_command_line(argv: list[str], method: str, params: CtlParams) -> None:
    args = build_parser().parse_args(["ctl", *argv])
    assert _ctl_request(args) == (method, params)
