"""HubRequests: the request surface every hub-facing surface serves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from hub.access import AccessError, Decision, DeviceRecord
from hub.echo import EchoModel
from hub.errors import UnknownAgentError
from hub.hub import Hub
from hub.requests import AgentParams, DecisionAnswer, HistoryParams, HubRequests
from hub.sessions import MessageEntry


@pytest.fixture
async def hub(data_dir: Path) -> AsyncIterator[Hub]:
    hub = Hub(data_dir, EchoModel)
    yield hub
    await hub.close()


async def chat(hub: Hub, *texts: str) -> None:
    agent = hub.default_agent
    for text in texts:
        agent.write(text)
    await agent.wait_idle()


def texts(entries: list[object]) -> list[str]:
    return [e.text for e in entries if isinstance(e, MessageEntry) and e.role == "user"]


async def test_history_honours_limit_and_before(hub: Hub) -> None:
    await chat(hub, "one", "two", "three")
    requests = HubRequests(hub)
    whole = requests.history(HistoryParams(agent_id="main"))
    assert texts(list(whole.entries)) == ["one", "two", "three"]
    assert (whole.agent_id, whole.last_seq, whole.truncated) == (
        "main",
        hub.default_agent.last_seq,
        False,
    )
    last = requests.history(HistoryParams(agent_id="main", limit=2))
    assert len(last.entries) == 2 and last.entries == whole.entries[-2:]
    older = requests.history(HistoryParams(agent_id="main", before=last.entries[0].seq))
    assert older.entries == whole.entries[:-2]
    wire = whole.model_dump(mode="json")
    assert set(wire) == {"agentId", "sessionId", "lastSeq", "entries", "truncated"}


def test_history_limit_is_bounded() -> None:
    with pytest.raises(ValidationError):
        HistoryParams(agent_id="main", limit=501)
    with pytest.raises(ValidationError):
        AgentParams(agent_id="")


async def test_unknown_agents_raise_one_error_with_a_stable_code(hub: Hub) -> None:
    requests = HubRequests(hub)
    with pytest.raises(UnknownAgentError) as history:
        requests.history(HistoryParams(agent_id="nobody"))
    with pytest.raises(UnknownAgentError) as abort:
        requests.abort(AgentParams(agent_id="nobody"))
    assert history.value.code == abort.value.code == "unknown_agent"
    assert str(abort.value) == "no agent 'nobody'"


async def test_agents_status_and_abort_answer_for_every_agent(hub: Hub) -> None:
    requests = HubRequests(hub)
    assert [a.agent_id for a in requests.agents().agents] == ["main"]
    assert requests.status().health.status in ("ok", "degraded")
    assert requests.abort(AgentParams(agent_id="main")).aborted is False


async def test_decide_approves_without_ever_exposing_the_device_token(hub: Hub) -> None:
    requests = HubRequests(hub)
    issued: list[str] = []

    def on_change(what: str, payload: Decision | DeviceRecord) -> None:
        if isinstance(payload, Decision) and payload.issued is not None:
            issued.append(payload.issued.token)

    hub.access.listen(on_change)
    asked = hub.access.request("device", "web-phone", "Phone")
    assert [p.code for p in requests.pending().pending] == [asked.code]
    answer = requests.decide(asked.code, True)
    assert answer == DecisionAnswer(
        code=asked.code, kind="device", subject="web-phone", label="Phone", approved=True
    )
    assert len(issued) == 1
    wire = answer.model_dump_json()
    assert issued[0] not in wire and "token" not in wire.lower()
    assert "token" not in DecisionAnswer.model_fields
    assert requests.pending().pending == []


async def test_decide_denies_and_keeps_access_error_codes(hub: Hub) -> None:
    requests = HubRequests(hub)
    asked = hub.access.request("channel", "telegram:42", "Ann")
    assert requests.decide(asked.code, False).approved is False
    assert not hub.access.is_channel_user_approved("telegram", "42")
    with pytest.raises(AccessError) as refused:
        requests.decide(asked.code, True)
    assert refused.value.code == "invalid_code"
