"""The one request table: every method's params, answers and refusals, and every surface
(gateway link, desktop bridge, control socket) serving every method of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import JsonValue, ValidationError

from app import ctl
from app.control_server import ControlServer
from desktop.batcher import PushBatcher
from desktop.bridge import DesktopApi, DesktopBridge, PageGate
from hub.access import AccessError, Decision, DeviceRecord
from hub.echo import EchoModel
from hub.errors import CodedError, UnknownAgentError
from hub.hub import Hub
from hub.requests import REQUESTS, Caller, RequestHost, dispatch
from hub.requests.access import DecisionAnswer, PairListAnswer
from hub.requests.agents import (
    AbortAnswer,
    AgentParams,
    AgentsAnswer,
    HistoryAnswer,
    HistoryParams,
    StatusAnswer,
)
from hub.sessions import MessageEntry
from hub.wire import WireModel
from tests.test_gateway_support import connect_client, running_stack

OWNER = Caller(surface="control", owner=True)
GUEST = Caller(surface="web", device_id="web-guest", owner=False)


@pytest.fixture
async def hub(data_dir: Path) -> AsyncIterator[Hub]:
    hub = Hub(data_dir, EchoModel)
    yield hub
    await hub.close()


def host_of(hub: Hub) -> RequestHost:
    return RequestHost(access=hub.access, health=hub.health, hub=hub)


async def ask(hub: Hub, method: str, caller: Caller = OWNER, **params: JsonValue) -> WireModel:
    return await dispatch(host_of(hub), caller, method, params)


async def chat(hub: Hub, *texts: str) -> None:
    agent = hub.default_agent
    for text in texts:
        agent.write(text)
    await agent.wait_idle()


def texts(entries: list[object]) -> list[str]:
    return [e.text for e in entries if isinstance(e, MessageEntry) and e.role == "user"]


async def test_history_honours_limit_before_and_after(hub: Hub) -> None:
    await chat(hub, "one", "two", "three")
    whole = await ask(hub, "history", agentId="main")
    assert isinstance(whole, HistoryAnswer)
    assert texts(list(whole.entries)) == ["one", "two", "three"]
    assert (whole.agent_id, whole.last_seq, whole.truncated) == (
        "main",
        hub.default_agent.last_seq,
        False,
    )
    last = await ask(hub, "history", agentId="main", limit=2)
    assert isinstance(last, HistoryAnswer)
    assert len(last.entries) == 2 and last.entries == whole.entries[-2:]
    older = await ask(hub, "history", agentId="main", before=last.entries[0].seq)
    assert isinstance(older, HistoryAnswer)
    assert older.entries == whole.entries[:-2]
    newer = await ask(hub, "history", agentId="main", after=whole.entries[-3].seq)
    assert isinstance(newer, HistoryAnswer)
    assert newer.entries == whole.entries[-2:]
    wire = whole.model_dump(mode="json")
    assert set(wire) == {"agentId", "sessionId", "lastSeq", "entries", "truncated"}


def test_history_limit_is_bounded() -> None:
    with pytest.raises(ValidationError):
        HistoryParams(agent_id="main", limit=501)
    with pytest.raises(ValidationError):
        AgentParams(agent_id="")


async def test_bad_params_name_the_field(hub: Hub) -> None:
    with pytest.raises(CodedError) as bad:
        await ask(hub, "history", agentId="main", limit="lots")
    assert bad.value.code == "invalid_params"
    assert bad.value.message.startswith("limit: ")
    with pytest.raises(CodedError) as unknown:
        await ask(hub, "format.disk")
    assert (unknown.value.code, unknown.value.message) == (
        "unknown_method",
        "unknown method 'format.disk'",
    )


async def test_unknown_agents_raise_one_error_with_a_stable_code(hub: Hub) -> None:
    with pytest.raises(UnknownAgentError) as history:
        await ask(hub, "history", agentId="nobody")
    with pytest.raises(UnknownAgentError) as abort:
        await ask(hub, "abort", agentId="nobody")
    assert history.value.code == abort.value.code == "unknown_agent"
    assert str(abort.value) == "no agent 'nobody'"


async def test_agents_status_and_abort_answer_for_every_agent(hub: Hub) -> None:
    agents = await ask(hub, "agents.list")
    assert isinstance(agents, AgentsAnswer)
    assert [a.agent_id for a in agents.agents] == ["main"]
    status = await ask(hub, "status")
    assert isinstance(status, StatusAnswer)
    assert status.health.status in ("ok", "degraded")
    assert await ask(hub, "abort", agentId="main") == AbortAnswer(aborted=False)


async def test_a_process_without_agents_says_so(data_dir: Path, hub: Hub) -> None:
    host = RequestHost(access=hub.access, health=hub.health)
    with pytest.raises(CodedError) as refused:
        await dispatch(host, OWNER, "agents.list", {})
    assert refused.value.code == "unavailable"
    status = await dispatch(host, OWNER, "status", {})
    assert isinstance(status, StatusAnswer) and status.agents == []


async def test_decide_approves_without_ever_exposing_the_device_token(hub: Hub) -> None:
    issued: list[str] = []

    def on_change(what: str, payload: Decision | DeviceRecord) -> None:
        if isinstance(payload, Decision) and payload.issued is not None:
            issued.append(payload.issued.token)

    hub.access.listen(on_change)
    asked = hub.access.request("device", "web-phone", "Phone")
    listing = await ask(hub, "pair.list")
    assert isinstance(listing, PairListAnswer)
    assert [p.code for p in listing.pending] == [asked.code]
    answer = await ask(hub, "pair.approve", code=asked.code)
    assert answer == DecisionAnswer(
        code=asked.code, kind="device", subject="web-phone", label="Phone", approved=True
    )
    assert len(issued) == 1
    wire = answer.model_dump_json()
    assert issued[0] not in wire and "token" not in wire.lower()
    assert "token" not in DecisionAnswer.model_fields
    listing = await ask(hub, "pair.list")
    assert isinstance(listing, PairListAnswer) and listing.pending == []


async def test_decide_denies_and_keeps_access_error_codes(hub: Hub) -> None:
    asked = hub.access.request("channel", "telegram:42", "Ann")
    denied = await ask(hub, "pair.deny", code=asked.code)
    assert isinstance(denied, DecisionAnswer) and denied.approved is False
    assert not hub.access.is_channel_user_approved("telegram", "42")
    with pytest.raises(AccessError) as refused:
        await ask(hub, "pair.approve", code=asked.code)
    assert refused.value.code == "invalid_code"


@pytest.mark.parametrize(
    "method", sorted(name for name, entry in REQUESTS.items() if entry.owner_only)
)
async def test_owner_requests_refuse_everyone_else(hub: Hub, method: str) -> None:
    hub.access.request("channel", "telegram:42", "Ann")
    with pytest.raises(CodedError) as refused:
        await ask(hub, method, GUEST)
    assert refused.value.code == "forbidden"
    assert hub.access.pending() != []


# -- every surface serves every method ----------------------------------------------------------


def sample_params(method: str) -> dict[str, JsonValue]:
    """Valid params for `method`: fields named like the common ones get a value."""
    values: dict[str, JsonValue] = {
        "agentId": "main",
        "code": "NOSUCH01",
        "deviceId": "nobody",
        "approvalId": "ap-nosuch",
        "attachmentId": "nosuch.png",
        "decision": "deny",
        "sessionKey": "main",
        "title": "A title",
        "seq": 0,
        "mode": "queue",
        "content": "hi",
        "name": "nosuch",
        "prompt": "x",
        "number": 1,
    }
    fields = REQUESTS[method].params.model_fields
    return {
        alias: value
        for name, info in fields.items()
        if info.is_required()
        for alias, value in values.items()
        if alias == (info.alias or name)
    }


def served(ok: bool, code: str | None) -> bool:
    """Answered by the method itself: a result, or the method's own refusal."""
    return ok or code not in ("unknown_method", "invalid_params", "unavailable", None)


async def test_the_control_socket_serves_every_method(hub: Hub, data_dir: Path) -> None:
    server = ControlServer(data_dir / "ctl.sock", host_of(hub), {})
    await server.start()
    try:
        for method in REQUESTS:
            response = await asyncio.to_thread(ctl.call, server.path, method, sample_params(method))
            code = response.error.code if response.error else None
            assert served(response.ok, code), (method, response)
    finally:
        await server.stop()


async def test_the_desktop_bridge_serves_every_method(hub: Hub) -> None:
    batcher = PushBatcher(lambda script: None, interval=0.0)
    bridge = DesktopBridge(hub, host_of(hub), batcher)
    await bridge.start()
    api = DesktopApi(bridge, PageGate(batcher))
    try:
        for method in REQUESTS:
            # pywebview calls the API on its own threads, never on the hub's loop.
            reply = await asyncio.to_thread(api.request, method, sample_params(method))
            error = reply.get("error")
            code = error.get("code") if isinstance(error, dict) else None
            assert served(reply["ok"] is True, str(code) if code else None), (method, reply)
    finally:
        await bridge.stop()


async def test_the_gateway_serves_every_method(data_dir: Path) -> None:
    async with running_stack(data_dir) as stack:
        client = await connect_client(stack.url, stack.hub)
        try:
            for method in REQUESTS:
                response = await client.request(method, sample_params(method))
                code = response.error.code if response.error else None
                assert served(response.ok, code), (method, response)
        finally:
            await client.close()
