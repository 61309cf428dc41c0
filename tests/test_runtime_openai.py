"""The real openai provider path, end to end: AsyncAgent -> pydantic-ai -> openai SDK -> HTTP ->
the local fake server, with the agent events a surface would see."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.agent import AsyncAgent
from hub.events import (
    AgentEnd,
    AgentError,
    AgentEvent,
    MessageUpdate,
    ToolExecutionEnd,
    ToolExecutionStart,
)
from hub.providers import ModelConfig, build_model
from hub.sessions import SessionStore
from tests.agent_turns import assistant_ends, only, run_turn
from tests.conftest import free_port
from tests.fake_openai import FakeOpenAI, Fault, Reply, ToolCall
from tests.test_gateway_support import eventually


def explode(reason: str) -> str:
    """A user tool that always fails (loaded by import path in a test)."""
    raise RuntimeError(f"exploded: {reason}")


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


def agent_for(server: FakeOpenAI, data_dir: Path, **config: object) -> AsyncAgent:
    settings = ModelConfig.model_validate(
        {"spec": "openai:gpt-test", "openai_base_url": server.base_url, **config}
    )
    return AsyncAgent("main", build_model(settings), SessionStore(data_dir))


async def test_text_streams_as_message_updates_with_usage(
    server: FakeOpenAI, data_dir: Path
) -> None:
    agent = agent_for(server, data_dir, openai_api_key="sk-test")
    seen: list[str] = []
    agent.subscribe(lambda e: seen.append(e.delta) if isinstance(e, MessageUpdate) else None)

    async def after_consumer(sent: int) -> None:
        # Each chunk leaves only once the last reached the subscriber: none arrive together.
        await eventually(lambda: len(seen) >= sent)

    server.enqueue(
        Reply(
            chunks=("Hel", "lo ", "there"),
            prompt_tokens=42,
            completion_tokens=3,
            pace=after_consumer,
        )
    )
    events = await run_turn(agent, "hi")
    updates = [e for e in events if isinstance(e, MessageUpdate)]
    assert [u.delta for u in updates] == ["Hel", "lo ", "there"]
    assert updates[-1].text == "Hello there"
    (end,) = assistant_ends(events)
    assert end.text == "Hello there"
    assert not end.aborted
    finish = only(events, AgentEnd)
    assert isinstance(finish, AgentEnd)
    assert (finish.status, finish.input_tokens, finish.output_tokens) == ("completed", 42, 3)
    request = server.requests[0]
    assert request.stream
    assert request.model == "gpt-test"
    assert request.authorization == "Bearer sk-test"
    assert request.messages[0]["role"] == "system"
    assert request.messages[-1] == {"role": "user", "content": "hi"}
    assert {t["function"]["name"] for t in request.tools} == {"current_time", "calculator"}  # type: ignore[call-overload,index]
    await agent.close()


async def test_tool_call_runs_and_its_result_goes_back_to_the_model(
    server: FakeOpenAI, data_dir: Path
) -> None:
    server.enqueue(
        Reply(
            chunks=("Let me work it out.",),
            tool_calls=(ToolCall("calculator", '{"expression": "6*7"}'),),
        ),
        Reply(chunks=("It is 42.",)),
    )
    agent = agent_for(server, data_dir)
    events = await run_turn(agent, "what is 6*7?")
    start = only(events, ToolExecutionStart)
    end = only(events, ToolExecutionEnd)
    assert isinstance(start, ToolExecutionStart)
    assert isinstance(end, ToolExecutionEnd)
    assert (start.tool_name, start.args) == ("calculator", {"expression": "6*7"})
    assert (end.result, end.is_error, end.tool_call_id) == (42, False, "call_1")
    assert [m.text for m in assistant_ends(events)] == ["Let me work it out.", "It is 42."]
    # The text before the call ends before the tool starts: surfaces never see it reopen.
    kinds = [e.type for e in events]
    assert kinds.index("tool_execution_start") > kinds.index("message_end", 3)
    followup = server.requests[1].messages
    assert followup[-1] == {"role": "tool", "tool_call_id": "call_1", "content": "42"}
    await agent.close()


async def test_failing_user_tool_is_an_error_result_and_the_run_goes_on(
    server: FakeOpenAI, data_dir: Path
) -> None:
    server.enqueue(
        Reply(chunks=(), tool_calls=(ToolCall("explode", '{"reason": "test"}'),)),
        Reply(chunks=("The tool failed, sorry.",)),
    )
    agent = agent_for(server, data_dir, tools=["tests.test_runtime_openai:explode"])
    events = await run_turn(agent, "try the tool")
    end = only(events, ToolExecutionEnd)
    assert isinstance(end, ToolExecutionEnd)
    assert end.is_error
    assert end.result == "RuntimeError: exploded: test"
    assert [m.text for m in assistant_ends(events)] == ["The tool failed, sorry."]
    finish = only(events, AgentEnd)
    assert isinstance(finish, AgentEnd)
    assert finish.status == "completed"
    assert "exploded: test" in str(server.requests[1].messages[-1]["content"])
    await agent.close()


@pytest.mark.parametrize(
    ("fault", "code", "names"),
    [
        (Fault(401, code="invalid_api_key"), "auth", "OPENAI_API_KEY"),
        (Fault(403, code="forbidden"), "auth", "OPENAI_API_KEY"),
        (Fault(404, code="model_not_found"), "model_not_found", "AGENTHUB_MODEL"),
    ],
)
async def test_permanent_failures_are_not_retried_and_say_what_to_fix(
    server: FakeOpenAI, data_dir: Path, fault: Fault, code: str, names: str
) -> None:
    server.enqueue(fault)
    agent = agent_for(server, data_dir)
    events = await run_turn(agent, "hi")
    error = only(events, AgentError)
    assert isinstance(error, AgentError)
    assert (error.code, error.retryable) == (code, False)
    assert names in error.message
    assert len(server.requests) == 1
    finish = only(events, AgentEnd)
    assert isinstance(finish, AgentEnd)
    assert finish.status == "failed"
    # A failed run never wedges the queue: the next turn runs normally.
    events = await run_turn(agent, "again")
    assert [m.text for m in assistant_ends(events)] == ["Hello, world"]
    await agent.close()


async def test_rate_limit_waits_for_retry_after_then_succeeds(
    server: FakeOpenAI, data_dir: Path
) -> None:
    server.enqueue(Fault(429, code="rate_limit_exceeded", retry_after=0.3), Reply(chunks=("ok",)))
    agent = agent_for(server, data_dir)
    events = await run_turn(agent, "hi")
    assert [m.text for m in assistant_ends(events)] == ["ok"]
    assert not [e for e in events if isinstance(e, AgentError)]
    assert len(server.requests) == 2
    await agent.close()


async def test_rate_limit_past_the_cap_surfaces_at_once(server: FakeOpenAI, data_dir: Path) -> None:
    server.enqueue(Fault(429, code="rate_limit_exceeded", retry_after=3600))
    agent = agent_for(server, data_dir)
    events = await run_turn(agent, "hi")
    error = only(events, AgentError)
    assert isinstance(error, AgentError)
    assert (error.code, error.retryable) == ("rate_limited", True)
    assert "3600s" in error.message
    assert len(server.requests) == 1
    await agent.close()


async def test_server_errors_are_retried_a_bounded_number_of_times(
    server: FakeOpenAI, data_dir: Path
) -> None:
    server.enqueue(Fault(500), Fault(502), Fault(500))
    agent = agent_for(server, data_dir, max_retries=2)
    events = await run_turn(agent, "hi")
    error = only(events, AgentError)
    assert isinstance(error, AgentError)
    assert (error.code, error.retryable) == ("server_error", True)
    assert "HTTP 500" in error.message
    assert len(server.requests) == 3
    assert not assistant_ends(events)
    await agent.close()


async def test_server_error_then_success_shows_one_reply(
    server: FakeOpenAI, data_dir: Path
) -> None:
    server.enqueue(Fault(503), Reply(chunks=("fine",)))
    agent = agent_for(server, data_dir)
    events = await run_turn(agent, "hi")
    assert [m.text for m in assistant_ends(events)] == ["fine"]
    await agent.close()


async def test_stream_cut_mid_reply_ends_the_partial_message_and_is_not_retried(
    server: FakeOpenAI, data_dir: Path
) -> None:
    server.enqueue(Reply(chunks=("Hel", "lo"), cut_after=1))
    agent = agent_for(server, data_dir)
    events = await run_turn(agent, "hi")
    (end,) = assistant_ends(events)
    assert (end.text, end.aborted) == ("Hel", True)
    error = only(events, AgentError)
    assert isinstance(error, AgentError)
    assert (error.code, error.retryable) == ("stream_cut", True)
    # Text was already shown, so sending the request again would duplicate it.
    assert len(server.requests) == 1
    await agent.close()


async def test_stream_cut_before_any_text_is_retried(server: FakeOpenAI, data_dir: Path) -> None:
    server.enqueue(Reply(chunks=("lost",), cut_after=0), Reply(chunks=("whole",)))
    agent = agent_for(server, data_dir)
    events = await run_turn(agent, "hi")
    assert [m.text for m in assistant_ends(events)] == ["whole"]
    assert len(server.requests) == 2
    await agent.close()


async def test_slow_first_byte_times_out_and_the_retry_answers(
    server: FakeOpenAI, data_dir: Path
) -> None:
    server.enqueue(Reply(chunks=("late",), first_byte_delay=5), Reply(chunks=("on time",)))
    agent = agent_for(server, data_dir, request_timeout=0.4)
    events = await run_turn(agent, "hi")
    assert [m.text for m in assistant_ends(events)] == ["on time"]
    # The timed-out request's connection was closed, not left waiting.
    async with asyncio.timeout(5):
        await server.wait_closed_early()
    await agent.close()


async def test_slow_first_byte_without_retries_is_a_timeout_error(
    server: FakeOpenAI, data_dir: Path
) -> None:
    server.enqueue(Reply(chunks=("late",), first_byte_delay=5))
    agent = agent_for(server, data_dir, request_timeout=0.3, max_retries=0)
    events = await run_turn(agent, "hi")
    error = only(events, AgentError)
    assert isinstance(error, AgentError)
    assert (error.code, error.retryable) == ("timeout", True)
    assert "request_timeout" in error.message
    await agent.close()


async def test_connection_refused_names_the_address(data_dir: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    settings = ModelConfig(spec="openai:gpt-test", openai_base_url=url, max_retries=0)
    agent = AsyncAgent("main", build_model(settings), SessionStore(data_dir))
    events = await run_turn(agent, "hi")
    error = only(events, AgentError)
    assert isinstance(error, AgentError)
    assert (error.code, error.retryable) == ("unreachable", True)
    assert url in error.message
    assert "OPENAI_BASE_URL" in error.message
    await agent.close()


async def test_abort_closes_the_provider_connection(server: FakeOpenAI, data_dir: Path) -> None:
    server.enqueue(Reply(chunks=("first", "never", "sent"), chunk_delay=30))
    agent = agent_for(server, data_dir)
    events: list[AgentEvent] = []
    first_text = asyncio.Event()

    def collect(event: AgentEvent) -> None:
        events.append(event)
        if isinstance(event, MessageUpdate):
            first_text.set()

    agent.subscribe(collect)
    agent.write("long answer please")
    async with asyncio.timeout(10):
        await first_text.wait()
        assert agent.abort()
        await server.wait_closed_early()
        await agent.wait_idle()
    assert server.closed_early == 1
    assert server.finished == 0
    await agent.close()
    (end,) = assistant_ends(events)
    assert (end.text, end.aborted) == ("first", True)
    finish = only(events, AgentEnd)
    assert isinstance(finish, AgentEnd)
    assert finish.status == "aborted"


async def test_history_continues_across_a_restart(server: FakeOpenAI, data_dir: Path) -> None:
    server.enqueue(
        Reply(chunks=("Noted: ",), tool_calls=(ToolCall("calculator", '{"expression": "1+1"}'),)),
        Reply(chunks=("Your name is Ada.",)),
    )
    first = agent_for(server, data_dir)
    await run_turn(first, "My name is Ada. Also, 1+1?")
    await first.close()

    second = agent_for(server, data_dir)
    await run_turn(second, "What is my name?")
    await second.close()
    messages = server.requests[-1].messages
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    assert messages[1]["content"] == "My name is Ada. Also, 1+1?"
    assert messages[2]["content"] == "Noted: "
    assert messages[2]["tool_calls"][0]["function"]["name"] == "calculator"  # type: ignore[call-overload,index]
    assert messages[3] == {"role": "tool", "tool_call_id": "call_1", "content": "2"}
    assert messages[4]["content"] == "Your name is Ada."
    assert messages[5]["content"] == "What is my name?"


async def test_ollama_spec_speaks_openai_to_its_server(server: FakeOpenAI, data_dir: Path) -> None:
    config = ModelConfig(spec="ollama:llama3.2", ollama_base_url=server.base_url)
    agent = AsyncAgent("main", build_model(config), SessionStore(data_dir))
    server.enqueue(Reply(chunks=("local ", "hello")))
    events = await run_turn(agent, "hi")
    assert [m.text for m in assistant_ends(events)] == ["local hello"]
    assert server.requests[0].model == "llama3.2"
    await agent.close()
    server.enqueue(Fault(404, code="model_not_found"))
    agent = AsyncAgent("main", build_model(config), SessionStore(data_dir))
    events = await run_turn(agent, "hi")
    error = only(events, AgentError)
    assert isinstance(error, AgentError)
    assert error.code == "model_not_found"
    assert server.base_url in error.message
    assert "ollama pull llama3.2" in error.message
    await agent.close()
