"""The OpenAI-compatible endpoint, driven by the official `openai` client: models, chat
completions streamed and not, sessions per API key, and every refusal in OpenAI's error
shape (in-process stack; `test_openai_api_serve.py` runs it against `agenthub serve`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import openai
import pytest

from hub.access import IssuedDevice
from hub.echo import EchoModel
from hub.sessions import MessageEntry
from tests.test_gateway_support import FailingModel, Stack, eventually, running_stack


@pytest.fixture
async def stack(data_dir: Path) -> AsyncIterator[Stack]:
    async with running_stack(data_dir, agent_ids=("main", "coder")) as stack:
        yield stack


def client_for(stack: Stack, token: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=token, base_url=f"{stack.url}/v1", max_retries=0)


def texts(stack: Stack, agent_id: str, session_key: str) -> list[str]:
    entries = stack.hub.agent(agent_id).history(session_key=session_key)
    return [e.text for e in entries if isinstance(e, MessageEntry)]


async def test_models_are_the_agents(stack: Stack) -> None:
    api = client_for(stack, stack.hub.access.issue_token("editor").token)
    models = await api.models.list()
    assert [m.id for m in models.data] == ["main", "coder"]
    assert all(m.owned_by == "agenthub" for m in models.data)


async def test_a_completion_lands_in_the_keys_own_session(stack: Stack) -> None:
    issued = stack.hub.access.issue_token("editor")
    api = client_for(stack, issued.token)
    reply = await api.chat.completions.create(
        model="coder",
        messages=[
            {"role": "system", "content": "ignored: the agent has its own prompt"},
            {"role": "user", "content": "hello from an editor"},
        ],
        temperature=0.2,
        max_tokens=50,
    )
    assert reply.choices[0].message.content == "hello from an editor"
    assert reply.choices[0].finish_reason == "stop" and reply.model == "coder"
    assert texts(stack, "coder", f"api:{issued.device_id}") == ["hello from an editor"] * 2
    assert texts(stack, "coder", "main") == []


async def test_a_streamed_completion_arrives_piece_by_piece(stack: Stack) -> None:
    issued = stack.hub.access.issue_token("editor")
    api = client_for(stack, issued.token)
    text = "streamed through the gateway, " * 8
    pieces: list[str] = []
    finish: list[str | None] = []
    stream = await api.chat.completions.create(
        model="main", messages=[{"role": "user", "content": text}], stream=True
    )
    async for chunk in stream:
        pieces += [c.delta.content for c in chunk.choices if c.delta.content]
        finish += [c.finish_reason for c in chunk.choices if c.finish_reason]
    assert "".join(pieces) == text
    assert len(pieces) > 1 and finish == ["stop"]
    assert texts(stack, "main", f"api:{issued.device_id}") == [text, text]


async def test_a_header_names_the_session_main_only_when_asked(stack: Stack) -> None:
    api = client_for(stack, stack.hub.access.issue_token("editor").token)
    for session in ("shared-notes", "main"):
        reply = await api.chat.completions.create(
            model="main",
            messages=[{"role": "user", "content": f"to {session}"}],
            extra_headers={"X-Agenthub-Session": session},
        )
        assert reply.choices[0].message.content == f"to {session}"
        assert texts(stack, "main", session) == [f"to {session}"] * 2


async def test_two_keys_keep_two_conversations(stack: Stack) -> None:
    first, second = (stack.hub.access.issue_token(label) for label in ("a", "b"))
    for issued in (first, second):
        api = client_for(stack, issued.token)
        await api.chat.completions.create(
            model="main", messages=[{"role": "user", "content": issued.device_id}]
        )
    for issued in (first, second):
        assert texts(stack, "main", f"api:{issued.device_id}") == [issued.device_id] * 2


async def test_a_paired_browsers_token_works_too(stack: Stack) -> None:
    browser: IssuedDevice = stack.hub.access.redeem_invite(
        stack.hub.access.create_invite().code, "laptop"
    )
    reply = await client_for(stack, browser.token).chat.completions.create(
        model="main", messages=[{"role": "user", "content": "from the laptop's key"}]
    )
    assert reply.choices[0].message.content == "from the laptop's key"


async def test_missing_wrong_and_revoked_keys_get_401(stack: Stack) -> None:
    issued = stack.hub.access.issue_token("editor")
    api = client_for(stack, issued.token)
    await api.models.list()
    with pytest.raises(openai.AuthenticationError) as refused:
        await client_for(stack, "not-a-token").models.list()
    assert refused.value.code == "invalid_api_key"
    assert stack.hub.access.revoke(issued.device_id)
    with pytest.raises(openai.AuthenticationError):
        await api.chat.completions.create(
            model="main", messages=[{"role": "user", "content": "after revoke"}]
        )
    assert texts(stack, "main", f"api:{issued.device_id}") == []
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": f"Basic {issued.token}"}):
            async with http.get(f"{stack.url}/v1/models", headers=headers) as response:
                body = await response.json()
            assert response.status == 401
            assert set(body["error"]) == {"message", "type", "param", "code"}
            assert "ctl tokens new" in body["error"]["message"]


async def test_malformed_bodies_get_400_in_openais_shape(stack: Stack) -> None:
    token = stack.hub.access.issue_token("editor").token
    cases: list[tuple[bytes, str]] = [
        (b"{not json", "invalid_json"),
        (b"[]", "invalid_request"),
        (b'{"model": "main"}', "invalid_request"),
        (b'{"model": "main", "messages": []}', "invalid_request"),
        (b'{"model": "main", "messages": [{"role": "wizard", "content": "x"}]}', "invalid_request"),
        (
            b'{"model": "main", "messages": [{"role": "assistant", "content": "x"}]}',
            "invalid_value",
        ),
        (
            b'{"model": "main", "n": 2, "messages": [{"role": "user", "content": "x"}]}',
            "unsupported_parameter",
        ),
        (
            b'{"model": "main", "messages": [{"role": "user", "content": [{"type": "image"}]}]}',
            "unsupported_content",
        ),
        (b'{"model": "main", "messages": [{"role": "user", "content": "  "}]}', "empty"),
    ]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:
        for raw, code in cases:
            async with http.post(
                f"{stack.url}/v1/chat/completions", data=raw, headers=headers
            ) as response:
                body = await response.json()
            assert response.status == 400, (raw, body)
            assert body["error"]["code"] == code, (raw, body)
            assert body["error"]["type"] == "invalid_request_error"
            assert body["error"]["message"]


async def test_unknown_models_and_bad_session_names_are_refused(stack: Stack) -> None:
    api = client_for(stack, stack.hub.access.issue_token("editor").token)
    with pytest.raises(openai.NotFoundError) as unknown:
        await api.chat.completions.create(
            model="nobody", messages=[{"role": "user", "content": "x"}]
        )
    assert unknown.value.code == "model_not_found" and "nobody" in unknown.value.message
    with pytest.raises(openai.BadRequestError) as bad_session:
        await api.chat.completions.create(
            model="main",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"X-Agenthub-Session": "no spaces allowed"},
        )
    assert bad_session.value.code == "invalid_session_key"


async def test_a_failed_run_is_an_error_streamed_or_not(data_dir: Path) -> None:
    async with running_stack(data_dir, model_factory=FailingModel) as stack:
        api = client_for(stack, stack.hub.access.issue_token("editor").token)
        with pytest.raises(openai.APIStatusError) as failed:
            await api.chat.completions.create(
                model="main", messages=[{"role": "user", "content": "x"}]
            )
        assert failed.value.status_code == 502 and failed.value.code == "auth"
        stream = await api.chat.completions.create(
            model="main", messages=[{"role": "user", "content": "x"}], stream=True
        )
        with pytest.raises(openai.APIError) as streamed:
            async for _chunk in stream:
                pass
        assert "API key" in streamed.value.message


async def test_a_client_that_leaves_mid_stream_leaves_the_run_to_finish(data_dir: Path) -> None:
    async with running_stack(
        data_dir, model_factory=lambda: EchoModel(pieces=20, delay=0.02)
    ) as stack:
        issued = stack.hub.access.issue_token("editor")
        api = client_for(stack, issued.token)
        text = "a long reply the client will not wait for " * 4
        stream = await api.chat.completions.create(
            model="main", messages=[{"role": "user", "content": text}], stream=True
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        await stream.close()
        session = f"api:{issued.device_id}"
        await eventually(lambda: texts(stack, "main", session) == [text, text])
        again = await api.chat.completions.create(
            model="main", messages=[{"role": "user", "content": "still served"}]
        )
        assert again.choices[0].message.content == "still served"


async def test_an_idle_keys_connection_is_closed_and_remade_on_use(stack: Stack) -> None:
    devices = stack.gateway.openai_api.devices
    devices.idle_seconds = 0.05
    issued = stack.hub.access.issue_token("editor")
    api = client_for(stack, issued.token)

    def connected() -> bool:
        return any(d.device_id == issued.device_id for d in stack.gateway.local_devices())

    await api.models.list()
    await eventually(lambda: len(devices) == 0 and not connected())
    reply = await api.chat.completions.create(
        model="main", messages=[{"role": "user", "content": "back again"}]
    )
    assert reply.choices[0].message.content == "back again"


async def test_without_a_linked_hub_calls_get_503(stack: Stack) -> None:
    api = client_for(stack, stack.hub.access.issue_token("editor").token)
    await api.models.list()
    await stack.link.stop()
    await eventually(lambda: stack.gateway.table.hubs() == 0)
    with pytest.raises(openai.APIStatusError) as refused:
        await api.models.list()
    assert refused.value.status_code == 503
    assert refused.value.code == "DEVICE_NOT_FOUND"
    assert "not connected" in refused.value.message


async def test_a_key_past_its_devices_frame_rate_gets_429(data_dir: Path) -> None:
    async with running_stack(data_dir, client_rate=0.001, client_burst=1) as stack:
        api = client_for(stack, stack.hub.access.issue_token("editor").token)
        await api.models.list()
        with pytest.raises(openai.RateLimitError) as limited:
            await api.models.list()
        assert limited.value.code == "RATE_LIMITED"
