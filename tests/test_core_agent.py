"""AsyncAgent: serial runs, origin binding, fan-out to subscribers and read(), overflow, failures,
abort, close, bad input, restart, and persistence before announcement."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from pathlib import Path

import pytest

from hub.agent import AsyncAgent
from hub.echo import EchoModel
from hub.errors import (
    AgentClosedError,
    InvalidInputError,
    ModelError,
    QueueFullError,
    ReaderBusyError,
)
from hub.events import (
    AgentEnd,
    AgentError,
    AgentEvent,
    AgentStart,
    CompactionEnd,
    CompactionStart,
    MessageEnd,
    MessageStart,
    MessageUpdate,
    ReadGap,
    ReadItem,
    ToolExecutionEnd,
)
from hub.model import (
    CompactionPlan,
    Model,
    ModelPart,
    ModelTurn,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    UsageReport,
)
from hub.origin import ChannelRoute, Origin
from hub.sessions import (
    UNCLEAN_SEQ_GAP,
    AcceptedEntry,
    HistoryEntry,
    MessageEntry,
    SessionStore,
    ToolEntry,
)

# -- test parts: real implementations of the model seam ----------------------------------------


class ScriptedModel:
    """Streams `parts` for each turn. With `gate` set, it waits on the gate after the first
    part; `raises` is thrown after the parts. Records what it saw and whether its stream's
    `finally` ran (i.e. the agent closed the generator)."""

    def __init__(
        self,
        parts: Sequence[ModelPart] = (TextDelta("Hello"), TextDelta(" world")),
        *,
        gate: asyncio.Event | None = None,
        raises: BaseException | None = None,
    ) -> None:
        self.parts = list(parts)
        self.gate = gate
        self.raises = raises
        self.turns: list[ModelTurn] = []
        self.closed = 0
        self.started = asyncio.Event()

    @property
    def name(self) -> str:
        return "scripted"

    async def stream(self, turn: ModelTurn) -> AsyncGenerator[ModelPart, None]:
        self.turns.append(turn)
        self.started.set()
        try:
            for index, part in enumerate(self.parts):
                yield part
                if index == 0 and self.gate is not None:
                    await self.gate.wait()
            if self.raises is not None:
                raise self.raises
        finally:
            self.closed += 1


class Recorder:
    """A subscriber that keeps every event and lets a test wait for a condition."""

    def __init__(self) -> None:
        self.events: list[AgentEvent] = []
        self.gaps: list[ReadGap] = []
        self._changed = asyncio.Event()

    def __call__(self, event: AgentEvent) -> None:
        self.events.append(event)
        self._changed.set()

    def on_gap(self, gap: ReadGap) -> None:
        self.gaps.append(gap)

    async def wait_for(self, done: Callable[[list[AgentEvent]], bool]) -> None:
        async def loop() -> None:
            while not done(self.events):
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(loop(), 10)  # a safety net against hangs, not a timing check

    async def until_runs_end(self, count: int) -> None:
        await self.wait_for(lambda events: sum(isinstance(e, AgentEnd) for e in events) >= count)

    def types(self) -> list[str]:
        return [e.type for e in self.events]


def make_agent(
    data_dir: Path,
    model: Model | None = None,
    *,
    read_limit: int = 4096,
    subscriber_limit: int = 4096,
    max_queued_turns: int = 64,
) -> AsyncAgent:
    return AsyncAgent(
        "main",
        model if model is not None else EchoModel(pieces=3),
        SessionStore(data_dir),
        read_limit=read_limit,
        subscriber_limit=subscriber_limit,
        max_queued_turns=max_queued_turns,
    )


RUN_TYPES = [
    "agent_start",
    "message_start",
    "message_end",
    "message_start",
    "message_update",
    "message_update",
    "message_update",
    "message_end",
    "agent_end",
]


async def read_until_idle(agent: AsyncAgent, runs: int) -> list[ReadItem]:
    items: list[ReadItem] = []
    async with aclosing(agent.read()) as reader:
        async for item in reader:
            items.append(item)
            if sum(isinstance(i, AgentEnd) for i in items) == runs:
                break
    return items


# -- runs ---------------------------------------------------------------------------------


async def test_writes_run_serially_in_write_order(data_dir: Path) -> None:
    agent = make_agent(data_dir, EchoModel(pieces=3))
    recorder = Recorder()
    agent.subscribe(recorder)
    texts = ["first message", "second one", "and a third"]
    run_ids = [agent.write(text) for text in texts]
    assert agent.busy
    await agent.wait_idle()
    await recorder.until_runs_end(3)
    assert recorder.types() == RUN_TYPES * 3
    runs = [[e for e in recorder.events if e.run_id == run_id] for run_id in run_ids]
    assert [run[0].seq for run in runs] == sorted(run[0].seq for run in runs)
    for run, text in zip(runs, texts, strict=True):
        ends = [e for e in run if isinstance(e, MessageEnd)]
        assert [(e.role, e.text) for e in ends] == [("user", text), ("assistant", text)]
        assert isinstance(run[-1], AgentEnd)
        assert run[-1].status == "completed"
    assert [e.seq for e in recorder.events] == list(range(1, len(recorder.events) + 1))
    assert agent.last_run is not None
    assert agent.last_run.run_id == run_ids[-1]
    assert [(e.role, e.text) for e in agent.history() if isinstance(e, MessageEntry)] == [
        (role, text) for text in texts for role in ("user", "assistant")
    ]
    await agent.close()


async def test_updates_carry_the_full_text_and_the_delta(data_dir: Path) -> None:
    agent = make_agent(data_dir, ScriptedModel([TextDelta("Hel"), TextDelta("lo"), TextDelta("!")]))
    recorder = Recorder()
    agent.subscribe(recorder)
    agent.write("hi")
    await recorder.until_runs_end(1)
    updates = [e for e in recorder.events if isinstance(e, MessageUpdate)]
    assert [(u.text, u.delta) for u in updates] == [
        ("Hel", "Hel"),
        ("Hello", "lo"),
        ("Hello!", "!"),
    ]
    assert len({u.message_id for u in updates}) == 1
    await agent.close()


async def test_origin_lands_in_agent_start(data_dir: Path) -> None:
    agent = make_agent(data_dir)
    recorder = Recorder()
    agent.subscribe(recorder)
    route = ChannelRoute(channel="telegram", chat_id="42", reply_to_message_id="7")
    channel_run = agent.write("from telegram", Origin(surface="channel", route=route))
    web_run = agent.write("from the web", Origin(surface="web", device_id="browser-1"))
    desktop_run = agent.write("no origin given")
    await recorder.until_runs_end(3)
    starts = {e.run_id: e.origin for e in recorder.events if isinstance(e, AgentStart)}
    assert starts[channel_run] == Origin(surface="channel", route=route)
    assert starts[channel_run].route == route
    assert starts[web_run] == Origin(surface="web", device_id="browser-1")
    assert starts[desktop_run] == Origin(surface="desktop")
    await agent.close()


async def test_tool_call_ends_the_open_message_and_is_saved_whole(data_dir: Path) -> None:
    parts: list[ModelPart] = [
        TextDelta("Let me check."),
        ToolCallStarted("c-1", "calc", {"expr": "6*7"}),
        ToolCallFinished("c-1", "calc", {"expr": "6*7"}, 42, False),
        TextDelta("It is 42."),
        UsageReport(input_tokens=11, output_tokens=7),
    ]
    agent = make_agent(data_dir, ScriptedModel(parts))
    recorder = Recorder()
    agent.subscribe(recorder)
    agent.write("what is 6*7?")
    await recorder.until_runs_end(1)
    assert recorder.types() == [
        "agent_start",
        "message_start",
        "message_end",
        "message_start",
        "message_update",
        "message_end",
        "tool_execution_start",
        "tool_execution_end",
        "message_start",
        "message_update",
        "message_end",
        "agent_end",
    ]
    tool_end = next(e for e in recorder.events if isinstance(e, ToolExecutionEnd))
    assert (tool_end.result, tool_end.is_error, tool_end.args) == (42, False, {"expr": "6*7"})
    end = recorder.events[-1]
    assert isinstance(end, AgentEnd)
    assert (end.input_tokens, end.output_tokens) == (11, 7)
    history = agent.history()
    assert [type(e).__name__ for e in history] == [
        "MessageEntry",
        "MessageEntry",
        "ToolEntry",
        "MessageEntry",
    ]
    assert isinstance(history[2], ToolEntry)
    assert history[2].result == 42
    await agent.close()


async def test_entries_are_saved_before_their_events_are_emitted(data_dir: Path) -> None:
    agent = make_agent(
        data_dir,
        ScriptedModel(
            [
                TextDelta("a"),
                ToolCallStarted("c", "t", {}),
                ToolCallFinished("c", "t", {}, "r", False),
            ]
        ),
    )
    seen_in_history: list[bool] = []

    def check(event: AgentEvent) -> None:
        if isinstance(event, MessageEnd | ToolExecutionEnd):
            seen_in_history.append(any(e.seq == event.seq for e in agent.history()))
        if isinstance(event, AgentEnd):
            seen_in_history.append(agent.session.entries[-1].seq == event.seq)

    agent.subscribe(check)
    recorder = Recorder()
    agent.subscribe(recorder)
    agent.write("go")
    await recorder.until_runs_end(1)
    assert seen_in_history == [True, True, True, True]
    await agent.close()


# -- subscribers --------------------------------------------------------------------------


async def test_every_subscriber_gets_every_event_in_order(data_dir: Path) -> None:
    agent = make_agent(data_dir, EchoModel(pieces=5))
    sync_recorder = Recorder()
    async_events: list[AgentEvent] = []

    async def async_callback(event: AgentEvent) -> None:
        await asyncio.sleep(0)
        async_events.append(event)

    agent.subscribe(sync_recorder)
    agent.subscribe(async_callback)
    third = Recorder()
    agent.subscribe(third)
    for n in range(3):
        agent.write(f"message number {n}")
    await third.until_runs_end(3)
    await sync_recorder.until_runs_end(3)
    await agent.close()
    assert sync_recorder.events == async_events == third.events
    assert [e.seq for e in third.events] == list(range(1, len(third.events) + 1))


async def test_a_raising_subscriber_keeps_receiving_and_breaks_nothing(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    agent = make_agent(data_dir, EchoModel(pieces=3))
    calls: list[AgentEvent] = []

    def broken(event: AgentEvent) -> None:
        calls.append(event)
        raise RuntimeError("subscriber bug")

    agent.subscribe(broken, name="broken")
    recorder = Recorder()
    agent.subscribe(recorder)
    agent.write("one")
    agent.write("two")
    await recorder.until_runs_end(2)
    await agent.close()
    assert calls == recorder.events
    assert recorder.types() == RUN_TYPES * 2
    assert "subscriber broken failed on an event; it keeps receiving" in caplog.text
    assert agent.last_run is not None
    assert agent.last_run.status == "completed"


async def test_a_slow_subscriber_stalls_neither_the_run_nor_the_others(data_dir: Path) -> None:
    agent = make_agent(data_dir, EchoModel(pieces=4))
    release = asyncio.Event()
    slow_events: list[AgentEvent] = []

    async def slow(event: AgentEvent) -> None:
        await release.wait()
        slow_events.append(event)

    agent.subscribe(slow)
    fast = Recorder()
    agent.subscribe(fast)
    agent.write("first")
    agent.write("second")
    await agent.wait_idle()  # both runs finished while `slow` is still held on event 1
    await fast.until_runs_end(2)
    assert slow_events == []
    release.set()
    await agent.close()  # drains the slow subscriber's queue
    assert slow_events == fast.events


async def test_unsubscribe_stops_delivery(data_dir: Path) -> None:
    agent = make_agent(data_dir)
    stopped = Recorder()
    unsubscribe = agent.subscribe(stopped)
    kept = Recorder()
    agent.subscribe(kept)
    agent.write("one")
    await stopped.until_runs_end(1)
    unsubscribe()
    unsubscribe()  # idempotent
    agent.write("two")
    await kept.until_runs_end(2)
    await agent.close()
    assert len(stopped.events) == len(RUN_TYPES)
    assert len(kept.events) == 2 * len(RUN_TYPES)


async def test_a_sync_callback_returning_awaitables_is_moved_to_its_own_task(
    data_dir: Path,
) -> None:
    agent = make_agent(data_dir, EchoModel(pieces=4))
    got: list[AgentEvent] = []

    async def slowly(event: AgentEvent) -> None:
        await asyncio.sleep(0)
        got.append(event)

    agent.subscribe(lambda event: slowly(event))  # looks sync, returns coroutines
    recorder = Recorder()
    agent.subscribe(recorder)
    agent.write("in order please")
    await recorder.until_runs_end(1)
    await agent.close()
    assert got == recorder.events


async def test_callbacks_may_unsubscribe_and_subscribe_while_receiving(data_dir: Path) -> None:
    agent = make_agent(data_dir, EchoModel(pieces=2))
    first: list[AgentEvent] = []
    late = Recorder()

    def once(event: AgentEvent) -> None:
        first.append(event)
        unsubscribe()
        agent.subscribe(late)

    unsubscribe = agent.subscribe(once)
    recorder = Recorder()
    agent.subscribe(recorder)
    agent.write("hello")
    await recorder.until_runs_end(1)
    await agent.close()
    assert first == recorder.events[:1]
    assert late.events == recorder.events[1:]


# -- overflow -----------------------------------------------------------------------------


def deltas(count: int) -> list[ModelPart]:
    return [TextDelta(f"d{n} ") for n in range(count)]


def tool_calls(count: int) -> list[ModelPart]:
    parts: list[ModelPart] = []
    for n in range(count):
        parts.append(ToolCallStarted(f"c{n}", "t", {}))
        parts.append(ToolCallFinished(f"c{n}", "t", {}, n, False))
    return parts


def check_coalesced(items: Sequence[ReadItem], updates_sent: int) -> None:
    assert not any(isinstance(i, ReadGap) for i in items)
    events = [i for i in items if not isinstance(i, ReadGap)]
    updates = [e for e in events if isinstance(e, MessageUpdate)]
    assert len(updates) < updates_sent
    end = next(e for e in events if isinstance(e, MessageEnd) and e.role == "assistant")
    assert end.text == "".join(f"d{n} " for n in range(updates_sent))
    for update in updates:
        assert end.text.startswith(update.text)
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs)
    assert [e.type for e in events if not isinstance(e, MessageUpdate)] == [
        "agent_start",
        "message_start",
        "message_end",
        "message_start",
        "message_end",
        "agent_end",
    ]


async def test_subscriber_overflow_coalesces_updates_first(data_dir: Path) -> None:
    agent = make_agent(data_dir, ScriptedModel(deltas(30)), subscriber_limit=5)
    release = asyncio.Event()
    held = Recorder()

    async def hold(event: AgentEvent) -> None:
        await release.wait()
        held(event)

    agent.subscribe(hold, on_gap=held.on_gap)
    agent.write("go")
    await agent.wait_idle()
    release.set()
    await held.until_runs_end(1)
    assert held.gaps == []
    check_coalesced(held.events, 30)
    await agent.close()


async def test_subscriber_overflow_then_drops_oldest_with_a_gap(data_dir: Path) -> None:
    # Events: agent_start 1 (taken, held), user message 2-3, five tool calls 4-13, agent_end 14.
    agent = make_agent(data_dir, ScriptedModel(tool_calls(5)), subscriber_limit=4)
    release = asyncio.Event()
    held = Recorder()

    async def hold(event: AgentEvent) -> None:
        await release.wait()
        held(event)

    agent.subscribe(hold, on_gap=held.on_gap)
    others = Recorder()
    agent.subscribe(others)
    agent.write("go")
    await agent.wait_idle()
    assert [e.seq for e in others.events] == list(range(1, 15))
    assert [i.seq for i in await read_until_idle(agent, 1) if not isinstance(i, ReadGap)] == list(
        range(1, 15)
    )
    release.set()
    await held.until_runs_end(1)
    assert [(g.dropped, g.first_seq, g.last_seq) for g in held.gaps] == [(9, 2, 10)]
    assert [e.seq for e in held.events] == [1, 11, 12, 13, 14]
    await agent.close()


async def test_subscriber_gap_without_on_gap_is_logged(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    agent = make_agent(data_dir, ScriptedModel(tool_calls(5)), subscriber_limit=4)
    release = asyncio.Event()
    held = Recorder()

    async def hold(event: AgentEvent) -> None:
        await release.wait()
        held(event)

    agent.subscribe(hold, name="laggard")
    agent.write("go")
    await agent.wait_idle()
    release.set()
    await held.until_runs_end(1)
    assert "subscriber laggard missed 9 events" in caplog.text
    assert "a consumer fell 4 items behind" in caplog.text
    await agent.close()


async def test_read_overflow_coalesces_then_drops_with_a_gap(data_dir: Path) -> None:
    agent = make_agent(data_dir, ScriptedModel(deltas(30)), read_limit=7)
    agent.write("go")
    await agent.wait_idle()  # nobody reads meanwhile
    check_coalesced(await read_until_idle(agent, 1), 30)
    await agent.close()

    agent = make_agent(data_dir / "b", ScriptedModel(tool_calls(5)), read_limit=4)
    others = Recorder()
    agent.subscribe(others)
    agent.write("go")
    await agent.wait_idle()
    items = await read_until_idle(agent, 1)
    assert [e.seq for e in others.events] == list(
        range(1, 15)
    )  # the stalled reader cost them nothing
    assert isinstance(items[0], ReadGap)
    assert (items[0].dropped, items[0].first_seq, items[0].last_seq) == (10, 1, 10)
    assert [i.seq for i in items[1:] if not isinstance(i, ReadGap)] == [
        11,
        12,
        13,
        14,
    ]
    await agent.close()


async def test_a_second_concurrent_reader_is_refused(data_dir: Path) -> None:
    agent = make_agent(data_dir)
    first = asyncio.ensure_future(read_until_idle(agent, 1))
    await asyncio.sleep(0)
    with pytest.raises(ReaderBusyError):
        async for _ in agent.read():
            pass
    agent.write("hello")
    items = await first
    assert [i.type for i in items] == RUN_TYPES
    # The slot is free again once the first reader is closed.
    agent.write("again")
    assert [i.type for i in await read_until_idle(agent, 1)] == RUN_TYPES
    await agent.close()


async def test_read_ends_when_the_agent_closes(data_dir: Path) -> None:
    agent = make_agent(data_dir)
    items: list[ReadItem] = []

    async def consume() -> None:
        async for item in agent.read():
            items.append(item)

    reader = asyncio.ensure_future(consume())
    agent.write("last words")
    await agent.close(grace=5)
    await asyncio.wait_for(reader, 10)
    assert [i.type for i in items] == RUN_TYPES
    assert [i async for i in agent.read()] == []  # after close: ends at once


# -- failures -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "code", "message", "retryable"),
    [
        (
            ModelError("rate_limited", "slow down", retryable=True),
            "rate_limited",
            "slow down",
            True,
        ),
        (
            RuntimeError("kaput"),
            "internal",
            "the agent failed unexpectedly (RuntimeError: kaput)",
            False,
        ),
    ],
    ids=["model-error", "runtime-error"],
)
async def test_a_failed_run_reports_and_the_next_write_is_served(
    data_dir: Path, exc: Exception, code: str, message: str, retryable: bool
) -> None:
    model = ScriptedModel([TextDelta("partial")], raises=exc)
    agent = make_agent(data_dir, model)
    recorder = Recorder()
    agent.subscribe(recorder)
    agent.write("please fail")
    await recorder.until_runs_end(1)
    assert recorder.types() == [
        "agent_start",
        "message_start",
        "message_end",
        "message_start",
        "message_update",
        "message_end",
        "agent_error",
        "agent_end",
    ]
    end_message = recorder.events[5]
    assert isinstance(end_message, MessageEnd)
    assert (end_message.text, end_message.aborted) == ("partial", True)
    error = recorder.events[6]
    assert isinstance(error, AgentError)
    assert (error.code, error.message, error.retryable) == (code, message, retryable)
    end = recorder.events[7]
    assert isinstance(end, AgentEnd)
    assert end.status == "failed"
    assert agent.last_run is not None
    assert (agent.last_run.status, agent.last_run.error_code) == ("failed", code)
    items = await read_until_idle(agent, 1)
    assert [i.type for i in items] == recorder.types()
    read_error = items[6]
    assert isinstance(read_error, AgentError)
    assert f"Error: {read_error.message}" == f"Error: {message}"
    assert read_error.run_id == end.run_id
    saved = agent.history()[-1]
    assert isinstance(saved, MessageEntry)
    assert (saved.text, saved.aborted) == ("partial", True)
    # The next write runs normally.
    model.raises = None
    model.parts = [TextDelta("fine now")]
    agent.write("again")
    await recorder.until_runs_end(2)
    assert isinstance(recorder.events[-1], AgentEnd)
    assert recorder.events[-1].status == "completed"
    assert model.closed == 2
    await agent.close()


async def test_a_storage_failure_fails_the_run_and_still_ends_it(data_dir: Path) -> None:
    agent = make_agent(data_dir, ScriptedModel([TextDelta("ok")]))
    recorder = Recorder()
    agent.subscribe(recorder)
    path, agent.session.path = agent.session.path, data_dir  # writes now fail (a directory)
    agent.write("doomed")
    await recorder.until_runs_end(1)
    errors = [e for e in recorder.events if isinstance(e, AgentError)]
    assert [(e.code, e.retryable) for e in errors] == [("storage", True)]
    end = recorder.events[-1]
    assert isinstance(end, AgentEnd)
    assert end.status == "failed"
    agent.session.path = path
    agent.write("recovered")
    await recorder.until_runs_end(2)
    assert isinstance(recorder.events[-1], AgentEnd)
    assert recorder.events[-1].status == "completed"
    await agent.close()


# -- abort and close ----------------------------------------------------------------------


async def test_abort_mid_run_ends_the_message_and_closes_the_model_stream(data_dir: Path) -> None:
    model = ScriptedModel([TextDelta("Once upon"), TextDelta(" a time")], gate=asyncio.Event())
    agent = make_agent(data_dir, model)
    recorder = Recorder()
    agent.subscribe(recorder)
    assert agent.abort() is False  # idle
    agent.write("tell me a story")
    await recorder.wait_for(lambda events: any(isinstance(e, MessageUpdate) for e in events))
    assert agent.abort() is True
    assert agent.abort() is False  # already aborting
    await recorder.until_runs_end(1)
    assert recorder.types()[-3:] == ["message_update", "message_end", "agent_end"]
    end_message = recorder.events[-2]
    assert isinstance(end_message, MessageEnd)
    assert (end_message.text, end_message.aborted) == ("Once upon", True)
    end = recorder.events[-1]
    assert isinstance(end, AgentEnd)
    assert end.status == "aborted"
    assert model.closed == 1  # the generator's finally block ran
    assert agent.last_run is not None
    assert agent.last_run.status == "aborted"
    await agent.close()


async def test_abort_before_the_model_starts_skips_it(data_dir: Path) -> None:
    model = ScriptedModel()
    agent = make_agent(data_dir, model)
    recorder = Recorder()
    aborted: list[bool] = []

    def stop_at_once(event: AgentEvent) -> None:
        # Delivered while the run is still saving the user's message (an fsync away).
        if isinstance(event, AgentStart):
            aborted.append(agent.abort())

    agent.subscribe(stop_at_once)
    agent.subscribe(recorder)
    agent.write("never mind")
    await recorder.until_runs_end(1)
    assert aborted == [True]
    assert model.turns == []
    assert recorder.types() == ["agent_start", "message_start", "message_end", "agent_end"]
    end = recorder.events[-1]
    assert isinstance(end, AgentEnd)
    assert end.status == "aborted"
    await agent.close()


async def test_close_with_grace_lets_queued_runs_finish(data_dir: Path) -> None:
    agent = make_agent(data_dir, EchoModel(pieces=3, delay=0.001))
    recorder = Recorder()
    agent.subscribe(recorder)
    agent.write("one")
    agent.write("two")
    assert await agent.close(grace=10) == 0
    assert agent.closed
    assert [e.status for e in recorder.events if isinstance(e, AgentEnd)] == [
        "completed",
        "completed",
    ]
    with pytest.raises(AgentClosedError) as info:
        agent.write("too late")
    assert info.value.code == "agent_closed"
    with pytest.raises(AgentClosedError):
        agent.subscribe(Recorder())
    assert await agent.close() == 0  # idempotent


async def test_close_without_grace_aborts_and_drops_queued_turns(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = ScriptedModel(gate=asyncio.Event())
    agent = make_agent(data_dir, model)
    recorder = Recorder()
    agent.subscribe(recorder)
    agent.write("running")
    agent.write("queued 1")
    agent.write("queued 2")
    await model.started.wait()
    closers = [asyncio.ensure_future(agent.close()) for _ in range(2)]
    assert sorted(await asyncio.gather(*closers)) == [0, 2]
    assert "2 queued messages never ran" in caplog.text
    assert model.closed == 1
    # Subscribers drained before close returned: the aborted run's end events arrived.
    assert recorder.types()[-2:] == ["message_end", "agent_end"]
    end = recorder.events[-1]
    assert isinstance(end, AgentEnd)
    assert end.status == "aborted"
    assert len(model.turns) == 1


async def test_close_gives_up_on_a_stuck_subscriber_after_drain(data_dir: Path) -> None:
    agent = make_agent(data_dir)
    never = asyncio.Event()

    async def stuck(event: AgentEvent) -> None:
        await never.wait()

    agent.subscribe(stuck, name="stuck")
    agent.write("hi")
    await agent.wait_idle()
    assert await agent.close(drain=0.01) == 0


# -- input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "empty"),
        (" \n\t ", "empty"),
        ("x" * 1_000_000, "too_large"),
        ("bad \ud800 surrogate", "invalid_text"),
    ],
    ids=["empty", "blank", "1MB", "lone-surrogate"],
)
async def test_bad_input_is_refused_with_a_code(data_dir: Path, text: str, code: str) -> None:
    agent = make_agent(data_dir)
    recorder = Recorder()
    agent.subscribe(recorder)
    with pytest.raises(InvalidInputError) as info:
        agent.write(text)
    assert info.value.code == code
    assert str(info.value)
    assert not agent.busy
    agent.write("a good one")  # nothing else was disturbed
    await recorder.until_runs_end(1)
    assert recorder.types() == RUN_TYPES
    await agent.close()


async def test_queue_full(data_dir: Path) -> None:
    agent = make_agent(data_dir, ScriptedModel(gate=asyncio.Event()), max_queued_turns=2)
    agent.write("one")
    agent.write("two")
    with pytest.raises(QueueFullError) as info:
        agent.write("three")
    assert info.value.code == "queue_full"
    assert agent.queued == 2
    await agent.close()


# -- sessions -----------------------------------------------------------------------------


async def test_restart_gets_history_back_and_seq_keeps_increasing(data_dir: Path) -> None:
    first = make_agent(data_dir)
    first.write("remember me")
    first.write("and me")
    await first.wait_idle()
    last_seq = first.last_seq
    history = first.history()
    await first.close()

    model = ScriptedModel()
    second = make_agent(data_dir, model)
    assert second.session.session_id == first.session.session_id
    assert second.history() == history
    assert second.last_seq == last_seq
    recorder = Recorder()
    second.subscribe(recorder)
    second.write("what did I say?")
    await recorder.until_runs_end(1)
    assert recorder.events[0].seq == last_seq + 1
    # The model sees the earlier turns as context.
    assert [e.text for e in model.turns[0].context if isinstance(e, MessageEntry)] == [
        "remember me",
        "remember me",
        "and me",
        "and me",
    ]
    await second.close()


async def test_restart_after_a_crash_mid_run_skips_seqs_clients_may_have_seen(
    data_dir: Path,
) -> None:
    agent = make_agent(data_dir, ScriptedModel(gate=asyncio.Event()))
    recorder = Recorder()
    agent.subscribe(recorder)
    agent.write("crash during this")
    await recorder.wait_for(lambda events: any(isinstance(e, MessageUpdate) for e in events))
    seen = agent.last_seq
    # A crash here: the process dies with the run open; nothing more reaches the file.
    restarted = make_agent(data_dir)
    assert restarted.last_seq > seen
    assert restarted.last_seq == agent.session.last_seq + UNCLEAN_SEQ_GAP
    await agent.close()
    await restarted.close()


async def test_new_session_waits_for_the_run_and_keeps_seq_increasing(data_dir: Path) -> None:
    gate = asyncio.Event()
    agent = make_agent(data_dir, ScriptedModel(gate=gate))
    recorder = Recorder()
    agent.subscribe(recorder)
    old = agent.session
    agent.write("in the old session")
    await recorder.wait_for(lambda events: any(isinstance(e, MessageUpdate) for e in events))
    switching = asyncio.ensure_future(agent.new_session())
    await asyncio.sleep(0)
    assert not switching.done()
    gate.set()
    new = await switching
    assert new.session_id != old.session_id
    assert agent.session is new
    assert [e.text for e in old.history() if isinstance(e, MessageEntry)] == [
        "in the old session",
        "Hello world",
    ]
    assert new.history() == []
    assert new.header.start_seq == old.last_seq
    agent.write("in the new session")
    await recorder.until_runs_end(2)
    assert recorder.events[-1].seq > old.last_seq
    assert [e.text for e in agent.history() if isinstance(e, MessageEntry)] == [
        "in the new session",
        "Hello world",
    ]
    await agent.close()


class HalvingCompactor:
    """Compacts whenever the context holds more than four entries, keeping the last two; its
    summary counts compactions and folds in the previous one."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.previous: list[str | None] = []

    def reason(self, context: Sequence[HistoryEntry], usage: UsageReport | None) -> str | None:
        return "more than four entries" if len(context) > 4 else None

    async def compact(
        self, context: Sequence[HistoryEntry], reason: str, previous_summary: str | None = None
    ) -> CompactionPlan:
        self.previous.append(previous_summary)
        if self.fail:
            raise RuntimeError("summariser down")
        summary = f"summary {len(self.previous)}" + (
            f" after ({previous_summary})" if previous_summary else ""
        )
        return CompactionPlan(
            first_kept_id=context[-2].id, removed=len(context) - 2, kept=2, summary=summary
        )


@pytest.mark.parametrize("fail", [False, True], ids=["ok", "failing"])
async def test_compaction_runs_before_agent_end(data_dir: Path, fail: bool) -> None:
    model = ScriptedModel()
    compactor = HalvingCompactor(fail=fail)
    agent = AsyncAgent("main", model, SessionStore(data_dir), compactor=compactor)
    recorder = Recorder()
    agent.subscribe(recorder)
    for n in range(3):
        agent.write(f"turn {n}")
    await recorder.until_runs_end(3)
    third = [e for e in recorder.events if e.run_id == recorder.events[-1].run_id]
    assert [e.type for e in third][-3:] == ["compaction_start", "compaction_end", "agent_end"]
    start, end = third[-3], third[-2]
    assert isinstance(start, CompactionStart)
    assert isinstance(end, CompactionEnd)
    assert start.reason == end.reason == "more than four entries"
    if fail:
        assert (end.removed, end.kept) == (0, 0)
        assert agent.session.last_compaction() is None
        assert len(agent.session.context()) == 6
    else:
        assert (end.removed, end.kept) == (4, 2)
        compaction = agent.session.last_compaction()
        assert compaction is not None
        assert compaction.seq == end.seq
        assert [e.text for e in agent.session.context() if isinstance(e, MessageEntry)] == [
            "turn 2",
            "Hello world",
        ]
        agent.write("after compaction")
        await recorder.until_runs_end(4)
        assert model.turns[-1].summary == "summary 1"
        assert len(model.turns[-1].context) == 2
        # The next compaction folds the first one's summary into its own.
        agent.write("and once more")
        await recorder.until_runs_end(5)
        assert compactor.previous == [None, "summary 1"]
        last = agent.session.last_compaction()
        assert last is not None
        assert last.summary == "summary 2 after (summary 1)"
    await agent.close()


def test_agent_id_is_validated(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="agent id"):
        AsyncAgent("../evil", EchoModel(), SessionStore(data_dir))


async def test_echo_model_final_text_equals_input_exactly(data_dir: Path) -> None:
    agent = make_agent(data_dir, EchoModel(pieces=7))
    recorder = Recorder()
    agent.subscribe(recorder)
    text = "  Leading space, ünïcode 🙂, a\nnew line and trailing space  "
    agent.write(text)
    await recorder.until_runs_end(1)
    updates = [e for e in recorder.events if isinstance(e, MessageUpdate)]
    assert len(updates) > 1
    end = [e for e in recorder.events if isinstance(e, MessageEnd)][-1]
    assert end.role == "assistant"
    assert end.text == text
    assert "".join(u.delta for u in updates) == text
    await agent.close()


async def test_message_start_precedes_updates_for_readers(data_dir: Path) -> None:
    agent = make_agent(data_dir)
    agent.write("x")
    items = await read_until_idle(agent, 1)
    starts = [i for i in items if isinstance(i, MessageStart)]
    assert [s.role for s in starts] == ["user", "assistant"]
    await agent.close()


# -- races --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
async def test_random_writes_aborts_and_session_switches_keep_the_invariants(
    data_dir: Path, seed: int
) -> None:
    """Writes, aborts, /new and yields interleaved at random, then close: every run is a
    well-formed, non-overlapping block of events with seq +1 each, every message that started
    ended, and what was announced is what was saved."""
    rng = random.Random(seed)
    agent = make_agent(data_dir, EchoModel(pieces=3, delay=0.0005))
    recorder = Recorder()
    agent.subscribe(recorder)
    sessions = {agent.session.session_id: agent.session}
    written: list[str] = []
    for step in range(40):
        action = rng.random()
        if action < 0.5:
            written.append(agent.write(f"message {step}"))
        elif action < 0.65:
            agent.abort()
        elif action < 0.72:
            session = await agent.new_session()
            sessions[session.session_id] = session
        else:
            for _ in range(rng.randint(1, 6)):
                await asyncio.sleep(0)
    await agent.close(grace=rng.choice([0, 10]))

    events = recorder.events
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    runs: list[list[AgentEvent]] = []
    for event in events:
        if isinstance(event, AgentStart):
            runs.append([event])
        else:
            assert runs, event
            assert event.run_id == runs[-1][0].run_id, "runs overlap"
            runs[-1].append(event)
    assert [run[0].run_id for run in runs] == written[: len(runs)]
    saved = {
        e.seq: e for s in sessions.values() for e in s.entries if not isinstance(e, AcceptedEntry)
    }
    for run in runs:
        end = run[-1]
        assert isinstance(end, AgentEnd), [e.type for e in run]
        assert sum(isinstance(e, AgentEnd) for e in run) == 1
        started = [e.message_id for e in run if isinstance(e, MessageStart)]
        ended = [e.message_id for e in run if isinstance(e, MessageEnd)]
        assert started == ended
        for event in run:
            if isinstance(event, MessageEnd):
                entry = saved[event.seq]
                assert isinstance(entry, MessageEntry)
                assert (entry.text, entry.aborted) == (event.text, event.aborted)
        assert saved[end.seq].type == "run"
        if end.status == "completed":
            texts = [e.text for e in run if isinstance(e, MessageEnd)]
            assert texts[0] == texts[1]  # echo: the reply equals the message
