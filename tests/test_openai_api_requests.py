"""The requests under the API surfaces: `tokens.new|list|revoke` (API device tokens) and
`messages.send` (a message to a session, waiting for the reply or not)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import JsonValue

from hub.echo import EchoModel
from hub.errors import CodedError
from hub.hub import Hub
from hub.requests import Caller, RequestHost, dispatch
from hub.requests.messages import SendAnswer
from hub.requests.tokens import NewToken, TokenRevoked, TokensAnswer
from hub.sessions import MessageEntry
from hub.wire import WireModel
from tests.test_gateway_support import FailingModel

OWNER = Caller(surface="control", owner=True)
DEVICE = Caller(surface="web", device_id="web-1", owner=True)
GUEST = Caller(surface="web", device_id="web-guest", owner=False)


@pytest.fixture
async def hub(data_dir: Path) -> AsyncIterator[Hub]:
    hub = Hub(data_dir, lambda: EchoModel(pieces=3, delay=0.0))
    yield hub
    await hub.close()


async def ask(hub: Hub, method: str, caller: Caller = OWNER, **params: JsonValue) -> WireModel:
    host = RequestHost(access=hub.access, health=hub.health, hub=hub)
    return await dispatch(host, caller, method, params)


# -- tokens -----------------------------------------------------------------------------------


async def test_a_token_is_shown_once_stored_hashed_and_verifies(hub: Hub) -> None:
    made = await ask(hub, "tokens.new", label="editor")
    assert isinstance(made, NewToken)
    assert made.device_id.startswith("api-") and made.label == "editor"
    assert hub.access.verify_device(made.device_id, made.token)
    record = hub.access.device_for_token(made.token)
    assert record is not None and record.device_id == made.device_id
    assert made.token not in hub.access.path.read_text()
    listed = await ask(hub, "tokens.list")
    assert isinstance(listed, TokensAnswer)
    assert [(t.device_id, t.label) for t in listed.tokens] == [(made.device_id, "editor")]
    assert made.token not in listed.model_dump_json()


async def test_a_revoked_token_is_refused_at_once(hub: Hub) -> None:
    made = await ask(hub, "tokens.new")
    assert isinstance(made, NewToken) and made.label == "API token"
    revoked = await ask(hub, "tokens.revoke", deviceId=made.device_id)
    assert isinstance(revoked, TokenRevoked) and revoked.revoked
    assert hub.access.device_for_token(made.token) is None
    assert not hub.access.verify_device(made.device_id, made.token)
    listed = await ask(hub, "tokens.list")
    assert isinstance(listed, TokensAnswer) and listed.tokens == []


async def test_tokens_list_and_revoke_leave_paired_browsers_alone(hub: Hub) -> None:
    browser = hub.access.redeem_invite(hub.access.create_invite().code, "phone")
    listed = await ask(hub, "tokens.list")
    assert isinstance(listed, TokensAnswer) and listed.tokens == []
    with pytest.raises(CodedError) as refused:
        await ask(hub, "tokens.revoke", deviceId=browser.device_id)
    assert refused.value.code == "unknown_device"
    assert "tokens list" in refused.value.message
    assert hub.access.verify_device(browser.device_id, browser.token)


async def test_unknown_tokens_and_bad_labels_are_refused(hub: Hub) -> None:
    with pytest.raises(CodedError) as unknown:
        await ask(hub, "tokens.revoke", deviceId="api-nosuch")
    assert unknown.value.code == "unknown_device"
    with pytest.raises(CodedError) as long_label:
        await ask(hub, "tokens.new", label="x" * 101)
    assert long_label.value.code == "invalid_params" and "label" in long_label.value.message
    assert hub.access.device_for_token("not-a-token") is None


async def test_tokens_are_the_owners_only(hub: Hub) -> None:
    for method, params in (
        ("tokens.new", {}),
        ("tokens.list", {}),
        ("tokens.revoke", {"deviceId": "api-x"}),
    ):
        with pytest.raises(CodedError) as refused:
            await ask(hub, method, GUEST, **params)
        assert refused.value.code == "forbidden"


# -- messages.send ----------------------------------------------------------------------------


async def test_send_waits_for_the_reply_in_the_named_session(hub: Hub) -> None:
    answer = await ask(
        hub, "messages.send", DEVICE, agentId="main", content="hi there", sessionKey="api:web-1"
    )
    assert isinstance(answer, SendAnswer)
    assert (answer.status, answer.reply, answer.error) == ("completed", "hi there", None)
    assert answer.session_key == "api:web-1"
    agent = hub.default_agent
    entries = agent.history(session_key="api:web-1")
    assert [e.text for e in entries if isinstance(e, MessageEntry)] == ["hi there", "hi there"]
    assert agent.history() == []


async def test_send_without_wait_answers_with_the_run_id(hub: Hub) -> None:
    answer = await ask(
        hub, "messages.send", OWNER, agentId="main", content="later", sessionKey="mcp", wait=False
    )
    assert isinstance(answer, SendAnswer)
    assert answer.status is None and answer.run_id.startswith("r")
    await hub.default_agent.wait_idle()
    assert hub.default_agent.history(session_key="mcp")[-1].text == "later"  # type: ignore[union-attr]


async def test_send_reports_a_failed_run(data_dir: Path) -> None:
    hub = Hub(data_dir, FailingModel)
    try:
        answer = await ask(hub, "messages.send", agentId="main", content="x", sessionKey="s")
    finally:
        await hub.close()
    assert isinstance(answer, SendAnswer)
    assert answer.status == "failed"
    assert answer.error is not None and answer.error.code == "auth"


async def test_send_refuses_bad_input_with_stable_codes(hub: Hub) -> None:
    cases: list[tuple[dict[str, JsonValue], str]] = [
        ({"agentId": "nobody", "content": "x"}, "unknown_agent"),
        ({"agentId": "main", "content": "   "}, "empty"),
        ({"agentId": "main", "content": "x", "sessionKey": "bad key!"}, "invalid_session_key"),
        ({"agentId": "main"}, "invalid_params"),
        ({"agentId": "main", "content": "x", "timeout": 0}, "invalid_params"),
    ]
    for params, code in cases:
        with pytest.raises(CodedError) as refused:
            await ask(hub, "messages.send", DEVICE, **params)
        assert refused.value.code == code, (params, refused.value)


async def test_a_guest_may_not_write_to_a_session_not_theirs(hub: Hub) -> None:
    with pytest.raises(CodedError) as refused:
        await ask(hub, "messages.send", GUEST, agentId="main", content="x", sessionKey="main")
    assert refused.value.code == "forbidden"
    with pytest.raises(CodedError) as channel:
        await ask(hub, "messages.send", Caller(surface="channel"), agentId="main", content="x")
    assert channel.value.code == "forbidden"
