"""The real anthropic provider path, end to end: AsyncAgent -> pydantic-ai -> anthropic SDK ->
HTTP -> the local fake Messages API server, with the agent events a surface would see."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.agent import AsyncAgent
from hub.events import (
    AgentEnd,
    AgentError,
    MessageUpdate,
    ToolExecutionEnd,
    ToolExecutionStart,
)
from hub.providers import ModelConfig, build_model
from hub.sessions import SessionStore
from tests.agent_turns import assistant_ends, only, run_turn
from tests.fake_anthropic import FakeAnthropic, Fault, Reply, ToolUse


@pytest.fixture
async def server() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


def agent_for(server: FakeAnthropic, data_dir: Path, **config: object) -> AsyncAgent:
    settings = ModelConfig.model_validate(
        {
            "spec": "anthropic:claude-opus-4-7",
            "anthropic_api_key": "sk-ant-test",
            "anthropic_base_url": server.base_url,
            **config,
        }
    )
    return AsyncAgent("main", build_model(settings), SessionStore(data_dir))


async def test_text_streams_as_message_updates_with_usage(
    server: FakeAnthropic, data_dir: Path
) -> None:
    server.enqueue(Reply(chunks=("Hel", "lo ", "there"), input_tokens=42, output_tokens=3))
    agent = agent_for(server, data_dir)
    events = await run_turn(agent, "hi")
    updates = [e for e in events if isinstance(e, MessageUpdate)]
    assert [u.delta for u in updates] == ["Hel", "lo ", "there"]
    assert updates[-1].text == "Hello there"
    (end,) = assistant_ends(events)
    assert (end.text, end.aborted) == ("Hello there", False)
    finish = only(events, AgentEnd)
    assert (finish.status, finish.input_tokens, finish.output_tokens) == ("completed", 42, 3)
    (request,) = server.requests
    assert (request.model, request.stream) == ("claude-opus-4-7", True)
    # The SDK sends the key as x-api-key or as a bearer token, depending on its version.
    assert "sk-ant-test" in f"{request.x_api_key} {request.authorization}"
    assert request.version
    assert "helpful assistant" in str(request.system)
    assert request.messages[-1]["role"] == "user"
    assert "hi" in str(request.messages[-1]["content"])
    assert {t["name"] for t in request.tools} == {"current_time", "calculator"}
    await agent.close()


async def test_tool_use_runs_the_calculator_and_its_result_goes_back(
    server: FakeAnthropic, data_dir: Path
) -> None:
    server.enqueue(
        Reply(
            chunks=("Let me work it out.",),
            tool_uses=(ToolUse("calculator", '{"expression": "6*7"}'),),
        ),
        Reply(chunks=("It is 42.",)),
    )
    agent = agent_for(server, data_dir)
    events = await run_turn(agent, "what is 6*7?")
    start = only(events, ToolExecutionStart)
    end = only(events, ToolExecutionEnd)
    assert (start.tool_name, start.args) == ("calculator", {"expression": "6*7"})
    assert (end.result, end.is_error, end.tool_call_id) == (42, False, "toolu_1")
    assert [m.text for m in assistant_ends(events)] == ["Let me work it out.", "It is 42."]
    followup = server.requests[1].messages
    assert followup[-2]["role"] == "assistant"
    assert followup[-2]["content"] == [
        {"type": "text", "text": "Let me work it out."},
        {
            "type": "tool_use",
            "id": "toolu_1",
            "name": "calculator",
            "input": {"expression": "6*7"},
        },
    ]
    assert followup[-1]["role"] == "user"
    content = followup[-1]["content"]
    assert isinstance(content, list)
    (result,) = content
    assert isinstance(result, dict)
    assert (result["type"], result["tool_use_id"]) == ("tool_result", "toolu_1")
    assert "42" in str(result["content"])
    await agent.close()


@pytest.mark.parametrize(
    ("fault", "code", "names"),
    [
        (Fault(401, "authentication_error", "invalid x-api-key"), "auth", "ANTHROPIC_API_KEY"),
        (
            Fault(404, "not_found_error", "model: claude-opus-4-7"),
            "model_not_found",
            "AGENTHUB_MODEL",
        ),
    ],
)
async def test_permanent_failures_are_not_retried_and_say_what_to_fix(
    server: FakeAnthropic, data_dir: Path, fault: Fault, code: str, names: str
) -> None:
    server.enqueue(fault)
    agent = agent_for(server, data_dir)
    events = await run_turn(agent, "hi")
    error = only(events, AgentError)
    assert (error.code, error.retryable) == (code, False)
    assert names in error.message
    assert "sk-ant-test" not in error.message
    assert len(server.requests) == 1
    assert only(events, AgentEnd).status == "failed"
    # A failed run never wedges the queue: the next turn runs normally.
    events = await run_turn(agent, "again")
    assert [m.text for m in assistant_ends(events)] == ["Hello, world"]
    await agent.close()


async def test_rate_limit_waits_for_retry_after_then_succeeds(
    server: FakeAnthropic, data_dir: Path
) -> None:
    server.enqueue(Fault(429, "rate_limit_error", retry_after=0.2), Reply(chunks=("ok",)))
    agent = agent_for(server, data_dir)
    events = await run_turn(agent, "hi")
    assert [m.text for m in assistant_ends(events)] == ["ok"]
    assert not [e for e in events if isinstance(e, AgentError)]
    assert len(server.requests) == 2
    await agent.close()


async def test_rate_limit_past_the_cap_surfaces_at_once(
    server: FakeAnthropic, data_dir: Path
) -> None:
    server.enqueue(Fault(429, "rate_limit_error", retry_after=3600))
    agent = agent_for(server, data_dir)
    events = await run_turn(agent, "hi")
    error = only(events, AgentError)
    assert (error.code, error.retryable) == ("rate_limited", True)
    assert "3600s" in error.message
    assert len(server.requests) == 1
    await agent.close()


@pytest.mark.parametrize(
    "fault",
    [
        Fault(529, "overloaded_error", "Overloaded"),
        Fault(500, "api_error", "Internal server error"),
    ],
)
async def test_overloaded_and_server_errors_are_retried_then_succeed(
    server: FakeAnthropic, data_dir: Path, fault: Fault
) -> None:
    server.enqueue(fault, Reply(chunks=("fine",)))
    agent = agent_for(server, data_dir)
    events = await run_turn(agent, "hi")
    assert [m.text for m in assistant_ends(events)] == ["fine"]
    assert not [e for e in events if isinstance(e, AgentError)]
    assert len(server.requests) == 2
    await agent.close()


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (Fault(529, "overloaded_error", "Overloaded"), "unavailable"),
        (Fault(500, "api_error", "Internal server error"), "server_error"),
    ],
)
async def test_persistent_overload_gives_up_after_bounded_retries(
    server: FakeAnthropic, data_dir: Path, fault: Fault, code: str
) -> None:
    server.enqueue(fault, fault)
    agent = agent_for(server, data_dir, max_retries=1)
    events = await run_turn(agent, "hi")
    error = only(events, AgentError)
    assert (error.code, error.retryable) == (code, True)
    assert f"HTTP {fault.status}" in error.message
    assert "Anthropic server at" in error.message
    assert len(server.requests) == 2
    assert not assistant_ends(events)
    events = await run_turn(agent, "again")
    assert [m.text for m in assistant_ends(events)] == ["Hello, world"]
    await agent.close()


async def test_error_event_mid_stream_ends_the_partial_message_and_is_not_retried(
    server: FakeAnthropic, data_dir: Path
) -> None:
    server.enqueue(Reply(chunks=("Hel", "lo"), error_after=1))
    agent = agent_for(server, data_dir)
    events = await run_turn(agent, "hi")
    (end,) = assistant_ends(events)
    assert (end.text, end.aborted) == ("Hel", True)
    error = only(events, AgentError)
    assert (error.code, error.retryable) == ("unavailable", True)
    # Text was already shown, so sending the request again would duplicate it.
    assert len(server.requests) == 1
    events = await run_turn(agent, "again")
    assert [m.text for m in assistant_ends(events)] == ["Hello, world"]
    await agent.close()


async def test_an_overload_event_before_any_text_surfaces_as_retryable(
    server: FakeAnthropic, data_dir: Path
) -> None:
    # An error event on an opened stream is not retried automatically (a 529 on opening is):
    # the user sees a retryable `unavailable` and the next turn works.
    server.enqueue(Reply(chunks=("never shown",), error_after=0))
    agent = agent_for(server, data_dir)
    events = await run_turn(agent, "hi")
    error = only(events, AgentError)
    assert (error.code, error.retryable) == ("unavailable", True)
    assert not assistant_ends(events)
    assert len(server.requests) == 1
    events = await run_turn(agent, "again")
    assert [m.text for m in assistant_ends(events)] == ["Hello, world"]
    await agent.close()
