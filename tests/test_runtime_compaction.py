"""Compaction: the budget compactor on its own, and through the agent with a small context
window against the fake OpenAI server (summary by the model, persisted, used next turn)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from hub.agent import AsyncAgent
from hub.events import CompactionEnd, CompactionStart
from hub.model import UsageReport
from hub.providers import ModelConfig, build_compactor, build_model
from hub.providers.compaction import (
    DEFAULT_CONTEXT_WINDOW,
    BudgetCompactor,
    context_window_for,
    estimate_tokens,
)
from hub.providers.runtime import PydanticAIModel
from hub.sessions import CompactionEntry, HistoryEntry, MessageEntry, SessionStore, ToolEntry
from tests.agent_turns import run_turn
from tests.fake_openai import FakeOpenAI, Fault, Reply


def conversation(turns: int, *, words: int = 20, tools_every: int = 3) -> list[HistoryEntry]:
    """`turns` runs of user, (sometimes) assistant text + tool entry, assistant reply."""
    entries: list[HistoryEntry] = []
    seq = 0
    for number in range(turns):
        run_id = f"r{number}"
        seq += 1
        entries.append(
            MessageEntry(id=f"u{number}", run_id=run_id, seq=seq, role="user", text="word " * words)
        )
        if number % tools_every == 0:
            seq += 1
            entries.append(
                MessageEntry(
                    id=f"p{number}", run_id=run_id, seq=seq, role="assistant", text="checking"
                )
            )
            seq += 1
            entries.append(
                ToolEntry(
                    id=f"t{number}",
                    run_id=run_id,
                    seq=seq,
                    tool_call_id=f"c{number}",
                    tool_name="calculator",
                    args={"expression": "1+1"},
                    result=2,
                    is_error=False,
                )
            )
        seq += 1
        entries.append(
            MessageEntry(
                id=f"a{number}", run_id=run_id, seq=seq, role="assistant", text="reply " * words
            )
        )
    return entries


@pytest.mark.parametrize(
    ("name", "configured", "window"),
    [
        ("gpt-4o-mini", None, 128_000),
        ("gpt-4.1-mini", None, 1_000_000),
        ("gpt-4", None, 8_192),
        ("claude-sonnet-4-5", None, 200_000),
        ("llama3.2:3b", None, 128_000),
        ("meta/llama3-8b", None, 128_000),
        ("something-new", None, DEFAULT_CONTEXT_WINDOW),
        ("gpt-4o-mini", 4_000, 4_000),
    ],
)
def test_context_window_for(name: str, configured: int | None, window: int) -> None:
    assert context_window_for(name, configured) == window


def test_reason_uses_reported_tokens_else_an_estimate() -> None:
    context = conversation(4)
    estimate = sum(map(estimate_tokens, context))
    compactor = BudgetCompactor(1_000)
    assert compactor.reason(context, UsageReport(10, 10, context_tokens=800)) is None
    reason = compactor.reason(context, UsageReport(10, 10, context_tokens=801))
    assert reason is not None
    assert "801 of 1000" in reason
    assert "reported" in reason
    # No reported context size: the estimate (plus the remembered overhead) decides.
    small = BudgetCompactor(estimate * 2)
    assert small.reason(context, None) is None
    tight = BudgetCompactor(estimate)
    estimated = tight.reason(context, UsageReport(5, 5))
    assert estimated is not None
    assert "estimated" in estimated


async def test_compact_halves_keeps_the_tail_and_cuts_only_before_a_user_message() -> None:
    context = conversation(30)
    total = sum(map(estimate_tokens, context))
    compactor = BudgetCompactor(int(total / 0.9))
    reason = compactor.reason(context, None)
    assert reason is not None
    plan = await compactor.compact(context, reason)
    assert plan.removed > 0
    assert plan.kept >= 10
    assert plan.removed + plan.kept == len(context)
    first_kept = context[plan.removed]
    assert plan.first_kept_id == first_kept.id
    assert isinstance(first_kept, MessageEntry)
    assert first_kept.role == "user"
    kept_tokens = sum(map(estimate_tokens, context[plan.removed :]))
    assert kept_tokens <= 0.5 * compactor.context_window
    # The largest cut that fits: one user turn more would not fit.
    previous_user = max(
        i
        for i, e in enumerate(context[: plan.removed])
        if isinstance(e, MessageEntry) and e.role == "user"
    )
    assert sum(map(estimate_tokens, context[previous_user:])) > 0.5 * compactor.context_window
    assert plan.summary is None


async def test_compact_always_keeps_the_last_ten_entries() -> None:
    context = conversation(6, words=400)
    compactor = BudgetCompactor(100)
    plan = await compactor.compact(context, "full")
    assert plan.kept >= 10
    first_kept = context[plan.removed]
    assert isinstance(first_kept, MessageEntry)
    assert first_kept.role == "user"


async def test_compact_with_no_allowed_cut_removes_nothing() -> None:
    context = conversation(3)
    plan = await BudgetCompactor(10).compact(context, "full")
    assert (plan.removed, plan.kept, plan.first_kept_id) == (0, len(context), None)


async def test_summary_of_the_removed_part_and_fallback_on_failure() -> None:
    context = conversation(20)
    seen: list[tuple[int, str | None]] = []

    async def summarize(
        entries: Sequence[HistoryEntry], max_tokens: int, previous: str | None
    ) -> str:
        seen.append((len(entries), previous))
        return "they talked about words"

    async def broken(entries: Sequence[HistoryEntry], max_tokens: int, previous: str | None) -> str:
        raise RuntimeError("summary model down")

    window = sum(map(estimate_tokens, context))
    plan = await BudgetCompactor(window, summarize=summarize).compact(context, "full", "before")
    assert plan.summary == "they talked about words"
    assert seen == [(plan.removed, "before")]
    fallback = await BudgetCompactor(window, summarize=broken).compact(context, "full")
    assert fallback.summary is None
    assert fallback.removed == plan.removed


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


def compacting_agent(server: FakeOpenAI, data_dir: Path) -> AsyncAgent:
    config = ModelConfig(
        spec="openai:gpt-test", openai_base_url=server.base_url, context_window=2_000
    )
    model = build_model(config)
    return AsyncAgent(
        "main", model, SessionStore(data_dir), compactor=build_compactor(model, config)
    )


async def test_agent_compacts_with_a_model_summary_and_uses_it_next_turn(
    server: FakeOpenAI, data_dir: Path
) -> None:
    agent = compacting_agent(server, data_dir)
    for number in range(8):
        server.enqueue(Reply(chunks=(f"answer {number}",), prompt_tokens=50 + number))
        events = await run_turn(agent, f"question {number}")
        assert not [e for e in events if isinstance(e, CompactionStart)]
    # The provider now reports a nearly full window: compaction follows this run.
    server.enqueue(
        Reply(chunks=("answer 8",), prompt_tokens=1_700, completion_tokens=10),
        Reply(chunks=("Earlier: eight questions, eight answers.",)),
    )
    events = await run_turn(agent, "question 8")
    start = next(e for e in events if isinstance(e, CompactionStart))
    end = next(e for e in events if isinstance(e, CompactionEnd))
    assert "1710 of 2000" in start.reason
    assert end.removed > 0
    assert end.kept >= 10
    summary_request = server.requests[-1]
    assert not summary_request.stream
    assert "question 0" in str(summary_request.messages)
    entry = agent.session.last_compaction()
    assert isinstance(entry, CompactionEntry)
    assert entry.summary == "Earlier: eight questions, eight answers."
    assert (entry.removed, entry.kept) == (end.removed, end.kept)

    await run_turn(agent, "question 9")
    messages = server.requests[-1].messages
    assert "Earlier: eight questions, eight answers." in str(messages[0]["content"])
    users = [m["content"] for m in messages if m["role"] == "user"]
    assert "question 0" not in users
    assert users[-1] == "question 9"
    assert len(messages) == 1 + end.kept + 1
    await agent.close()

    # The compaction is persisted: a restarted agent sends the same reduced context.
    again = compacting_agent(server, data_dir)
    await run_turn(again, "question 10")
    restarted = server.requests[-1].messages
    assert "Earlier: eight questions" in str(restarted[0]["content"])
    assert "question 0" not in [m["content"] for m in restarted if m["role"] == "user"]
    await again.close()


async def test_agent_compacts_without_summary_when_the_summary_fails(
    server: FakeOpenAI, data_dir: Path
) -> None:
    agent = compacting_agent(server, data_dir)
    for number in range(8):
        await run_turn(agent, f"question {number}")
    server.enqueue(Reply(chunks=("full",), prompt_tokens=1_900), Fault(500))
    events = await run_turn(agent, "question 8")
    assert server.requests[-1].stream is False
    end = next(e for e in events if isinstance(e, CompactionEnd))
    assert end.removed > 0
    entry = agent.session.last_compaction()
    assert isinstance(entry, CompactionEntry)
    assert entry.summary is None
    await agent.close()


async def test_model_summary_folds_in_the_previous_one(server: FakeOpenAI) -> None:
    config = ModelConfig(spec="openai:gpt-test", openai_base_url=server.base_url)
    model = build_model(config)
    assert isinstance(model, PydanticAIModel)
    server.enqueue(Reply(chunks=("  both parts  ",)))
    summary = await model.summarize(conversation(2), 100, "they met on Monday")
    assert summary == "both parts"
    sent = str(server.requests[-1].messages)
    assert "they met on Monday" in sent
    assert "word word" in sent


async def test_second_compaction_summary_carries_the_first(
    server: FakeOpenAI, data_dir: Path
) -> None:
    agent = compacting_agent(server, data_dir)
    for round_number in range(2):
        for number in range(8):
            await run_turn(agent, f"round {round_number} question {number}")
        server.enqueue(
            Reply(chunks=("full",), prompt_tokens=1_900),
            Reply(chunks=(f"summary {round_number}",)),
        )
        events = await run_turn(agent, f"round {round_number} last")
        assert any(isinstance(e, CompactionEnd) and e.removed for e in events)
    second_summary_request = str(server.requests[-1].messages)
    assert "summary 0" in second_summary_request
    entry = agent.session.last_compaction()
    assert isinstance(entry, CompactionEntry)
    assert entry.summary == "summary 1"
    await agent.close()
