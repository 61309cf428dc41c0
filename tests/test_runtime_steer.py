"""Write mode `steer` with a real provider: a message written while a turn runs a tool reaches
the model's next request as a user message (the real openai client through pydantic-ai against
the local stand-in), is recorded in the session in order, and is answered in the same run;
directly and through the gateway's web client frame."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import JsonValue

from hub.agent import AsyncAgent
from hub.events import AgentEnd, AgentEvent
from hub.providers import ModelConfig, build_model
from hub.sessions import MessageEntry, SessionStore, ToolEntry
from tests.agent_turns import run_turn
from tests.fake_openai import FakeOpenAI, Reply, ToolCall
from tests.test_gateway_support import (
    connect_client,
    eventually,
    is_stream,
    running_stack,
    stream_of,
)

HOLD_TOOL = "tests.test_runtime_steer:hold"


@dataclass
class _Hold:
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


HOLD = _Hold()


async def hold(reason: str) -> str:
    """Wait until the test lets go: a tool call that takes a while."""
    HOLD.entered.set()
    await HOLD.release.wait()
    return f"waited for {reason}"


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    global HOLD
    HOLD = _Hold()
    async with FakeOpenAI() as fake:
        yield fake


def script_tool_run(server: FakeOpenAI) -> None:
    """A reply that calls `hold`, then the answer after it."""
    server.enqueue(
        Reply(chunks=("Checking.",), tool_calls=(ToolCall("hold", '{"reason": "prices"}'),)),
        Reply(chunks=("Cheap it is.",)),
    )


def openai_model(server: FakeOpenAI) -> ModelConfig:
    return ModelConfig.model_validate(
        {
            "spec": "openai:gpt-test",
            "openai_base_url": server.base_url,
            "openai_api_key": "sk-test",
            "tools": [HOLD_TOOL],
        }
    )


def recorded(agent: AsyncAgent, key: str = "main") -> list[tuple[str, str]]:
    """The session's messages and tool calls, in order."""
    rows: list[tuple[str, str]] = []
    for entry in agent.history(session_key=key):
        if isinstance(entry, MessageEntry):
            rows.append((entry.role, entry.text))
        elif isinstance(entry, ToolEntry):
            rows.append(("tool", entry.tool_name))
    return rows


STEERED_RUN = [
    ("user", "plan a trip"),
    ("assistant", "Checking."),
    ("tool", "hold"),
    ("user", "make it cheap"),
    ("assistant", "Cheap it is."),
]


def assert_steered_request(server: FakeOpenAI) -> None:
    assert len(server.requests) == 2
    second = server.requests[1].messages
    assert second[-2] == {"role": "tool", "tool_call_id": "call_1", "content": "waited for prices"}
    assert second[-1] == {"role": "user", "content": "make it cheap"}
    assert {"role": "user", "content": "make it cheap"} not in server.requests[0].messages


async def test_a_message_steered_during_a_tool_call_joins_the_next_request(
    server: FakeOpenAI, data_dir: Path
) -> None:
    script_tool_run(server)
    agent = AsyncAgent("main", build_model(openai_model(server)), SessionStore(data_dir))
    events: list[AgentEvent] = []
    agent.subscribe(events.append)
    run = agent.write("plan a trip")
    await HOLD.entered.wait()
    assert agent.write("make it cheap", mode="steer") == run
    HOLD.release.set()
    await agent.wait_idle()

    assert_steered_request(server)
    assert recorded(agent) == STEERED_RUN
    ends = [e for e in events if isinstance(e, AgentEnd)]
    assert [(e.run_id, e.status) for e in ends] == [(run, "completed")]
    assert {e.run_id for e in events} == {run}

    # The next turn's context carries the steered message where it was said.
    server.enqueue(Reply(chunks=("Bon voyage.",)))
    await run_turn(agent, "thanks")
    roles = [(m["role"], m.get("content")) for m in server.requests[2].messages[1:]]
    assert roles == [
        ("user", "plan a trip"),
        ("assistant", "Checking."),
        ("tool", "waited for prices"),
        ("user", "make it cheap"),
        ("assistant", "Cheap it is."),
        ("user", "thanks"),
    ]
    await agent.close()


async def test_steering_after_the_last_request_becomes_the_next_turn(
    server: FakeOpenAI, data_dir: Path
) -> None:
    """A message steered in while the final answer streams reaches no request of that run: it
    is answered by a run of its own, after it."""
    server.enqueue(Reply(chunks=("One", " moment")), Reply(chunks=("Later.",)))
    agent = AsyncAgent("main", build_model(openai_model(server)), SessionStore(data_dir))
    started = asyncio.Event()
    events: list[AgentEvent] = []

    def watch(event: AgentEvent) -> None:
        events.append(event)
        if event.type == "message_update":
            started.set()

    agent.subscribe(watch)
    first = agent.write("hello")
    await started.wait()
    agent.write("one more thing", mode="steer")
    await agent.wait_idle()
    runs = [e.run_id for e in events if isinstance(e, AgentEnd)]
    assert len(runs) == 2 and runs[0] == first
    assert server.requests[1].messages[-1] == {"role": "user", "content": "one more thing"}
    assert [text for role, text in recorded(agent) if role == "user"] == [
        "hello",
        "one more thing",
    ]
    await agent.close()


async def test_steer_from_the_web_client_frame(server: FakeOpenAI, data_dir: Path) -> None:
    script_tool_run(server)
    async with running_stack(data_dir, model_factory=lambda: build_model(openai_model(server))) as (
        stack
    ):
        client = await connect_client(stack.url, stack.hub)
        await client.message("plan a trip")
        await HOLD.entered.wait()
        lane = stack.hub.default_agent.lane("main")
        payload: dict[str, JsonValue] = {
            "agentId": "main",
            "content": "make it cheap",
            "mode": "steer",
        }
        await client.send("hub", "message", payload)
        await eventually(lambda: lane.current is not None and bool(lane.current.steering))
        HOLD.release.set()
        end = stream_of(await client.next_frame(is_stream("agent_end")))
        assert end.event["status"] == "completed"
        assert_steered_request(server)
        history = await client.history()
        texts = [(e.role, e.text) for e in history.entries if isinstance(e, MessageEntry)]
        assert texts == [row for row in STEERED_RUN if row[0] != "tool"]
        await client.close()
