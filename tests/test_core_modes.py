"""Messages that arrive mid-run: the write modes queue, collect, steer and interrupt, a
session's default mode, the channel debounce, and a randomized race over many sessions."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator
from pathlib import Path

from hub.agent import AsyncAgent
from hub.echo import EchoModel
from hub.events import AgentEnd, AgentEvent, AgentStart, MessageEnd, MessageStart
from hub.hub import Hub
from hub.model import ModelPart, ModelTurn, TextDelta
from hub.origin import ChannelRoute, Origin
from hub.scopes import ConversationConfig, Viewer
from hub.sessions import AcceptedEntry, MessageEntry, SessionStore


class StepModel:
    """Says "thinking about <text>", waits for `gate`, then takes steering (unless `deaf`) and
    answers each steered message."""

    def __init__(self, *, deaf: bool = False) -> None:
        self.gate = asyncio.Event()
        self.started = asyncio.Event()
        self.deaf = deaf
        self.turns: list[str] = []

    @property
    def name(self) -> str:
        return "steps"

    async def stream(self, turn: ModelTurn) -> AsyncGenerator[ModelPart, None]:
        self.turns.append(turn.text)
        self.started.set()
        yield TextDelta(f"thinking about {turn.text}")
        await self.gate.wait()
        if not self.deaf:
            for text in turn.steering():
                yield TextDelta(f"noted: {text}")


def make_agent(data_dir: Path, model: object) -> AsyncAgent:
    return AsyncAgent("main", model, SessionStore(data_dir))  # type: ignore[arg-type]


def said(agent: AsyncAgent, key: str = "main") -> list[tuple[str, str]]:
    return [(e.role, e.text) for e in agent.history(session_key=key) if isinstance(e, MessageEntry)]


async def test_queue_runs_each_message_as_its_own_turn(data_dir: Path) -> None:
    model = StepModel()
    agent = make_agent(data_dir, model)
    first = agent.write("one")
    second = agent.write("two", mode="queue")
    assert first != second
    model.gate.set()
    await agent.wait_idle()
    assert model.turns == ["one", "two"]
    await agent.close()


async def test_collect_merges_what_arrives_during_a_run_into_one_next_turn(
    data_dir: Path,
) -> None:
    model = StepModel()
    agent = make_agent(data_dir, model)
    agent.write("first")
    await model.started.wait()
    second = agent.write("second", mode="collect")
    third = agent.write("third", mode="collect")
    assert second == third
    model.gate.set()
    await agent.wait_idle()
    assert model.turns == ["first", "second\n\nthird"]
    await agent.close()


async def test_steer_reaches_the_running_turn_at_its_next_step(data_dir: Path) -> None:
    model = StepModel()
    agent = make_agent(data_dir, model)
    events: list[AgentEvent] = []
    agent.subscribe(events.append)
    run = agent.write("plan a trip")
    await model.started.wait()
    assert agent.write("make it cheap", mode="steer") == run
    model.gate.set()
    await agent.wait_idle()
    assert model.turns == ["plan a trip"]
    assert said(agent) == [
        ("user", "plan a trip"),
        ("assistant", "thinking about plan a trip"),
        ("user", "make it cheap"),
        ("assistant", "noted: make it cheap"),
    ]
    assert sum(isinstance(e, AgentEnd) for e in events) == 1
    starts = [e for e in events if isinstance(e, MessageStart)]
    ends = [e for e in events if isinstance(e, MessageEnd)]
    assert [s.message_id for s in starts] == [e.message_id for e in ends]
    await agent.close()


async def test_steering_the_model_never_takes_becomes_the_next_turn(data_dir: Path) -> None:
    model = StepModel(deaf=True)
    agent = make_agent(data_dir, model)
    agent.write("first")
    await model.started.wait()
    agent.write("by the way", mode="steer")
    model.gate.set()
    await agent.wait_idle()
    assert model.turns == ["first", "by the way"]
    await agent.close()


async def test_steer_with_the_echo_model(data_dir: Path) -> None:
    gate = asyncio.Event()

    class SlowEcho(EchoModel):
        async def stream(self, turn: ModelTurn) -> AsyncGenerator[ModelPart, None]:
            async for part in super().stream(turn):
                yield part
                await gate.wait()

    agent = make_agent(data_dir, SlowEcho(pieces=1))
    answering = asyncio.Event()

    def watch(event: AgentEvent) -> None:
        if isinstance(event, MessageStart) and event.role == "assistant":
            answering.set()

    agent.subscribe(watch)
    agent.write("hello")
    await answering.wait()
    agent.write("and more", mode="steer")
    gate.set()
    await agent.wait_idle()
    assert said(agent) == [
        ("user", "hello"),
        ("assistant", "hello"),
        ("user", "and more"),
        ("assistant", "and more"),
    ]
    await agent.close()


async def test_interrupt_aborts_the_run_then_answers_first(data_dir: Path) -> None:
    model = StepModel()
    agent = make_agent(data_dir, model)
    events: list[AgentEvent] = []
    agent.subscribe(events.append)
    first = agent.write("long job")
    await model.started.wait()
    agent.write("queued behind")
    agent.write("stop, do this", mode="interrupt")
    model.gate.set()
    await agent.wait_idle()
    ends = {e.run_id: e.status for e in events if isinstance(e, AgentEnd)}
    assert ends[first] == "aborted"
    assert model.turns == ["long job", "stop, do this", "queued behind"]
    await agent.close()


async def test_a_session_default_mode_applies_to_its_writes(data_dir: Path) -> None:
    model = StepModel()
    hub = Hub(data_dir, lambda: model)
    agent = hub.default_agent
    owner = Viewer(surface="desktop", owner=True)
    desk = Origin(surface="desktop")
    hub.submit("main", "start", desk)
    hub.sessions.set_mode(agent, owner, "main", "collect")
    await model.started.wait()
    assert hub.submit("main", "a", desk) == hub.submit("main", "b", desk)
    model.gate.set()
    await agent.wait_idle()
    assert model.turns == ["start", "a\n\nb"]
    await hub.close()
    again = Hub(data_dir, lambda: model)
    assert again.default_agent.lane("main").mode == "collect"
    await again.close()


async def test_a_burst_of_chat_messages_becomes_one_turn(data_dir: Path) -> None:
    model = StepModel()
    model.gate.set()
    config = ConversationConfig(debounce_idle=0.05, debounce_cap=5)
    hub = Hub(data_dir, lambda: model, conversations=config)
    route = ChannelRoute(channel="telegram", chat_id="5", user_id="5", chat_kind="private")
    other = ChannelRoute(channel="telegram", chat_id="6", user_id="6", chat_kind="private")
    runs = {
        hub.submit("main", text, Origin(surface="channel", route=route))
        for text in ("so", "about", "that")
    }
    hub.submit("main", "someone else", Origin(surface="channel", route=other))
    assert len(runs) == 1
    await hub.default_agent.wait_idle()
    assert model.turns == ["so\n\nabout\n\nthat", "someone else"]
    hub.submit("main", "later", Origin(surface="channel", route=route))
    await hub.default_agent.wait_idle()
    assert model.turns[-1] == "later"
    await hub.close()


async def test_random_writes_in_many_sessions_never_cross(data_dir: Path) -> None:
    """Writes from several surfaces into many sessions, with aborts, /new and random modes:
    per session, runs never overlap and keep write order; seq is one sequence; every reply is
    in its own session and goes back to its own origin; announced equals saved."""
    for seed in range(4):
        rng = random.Random(seed)
        folder = data_dir / f"seed-{seed}"
        folder.mkdir()
        config = ConversationConfig(owners=frozenset({"telegram:1"}), max_concurrent_runs=3)
        hub = Hub(folder, lambda: EchoModel(pieces=3, delay=0.0005), conversations=config)
        agent = hub.default_agent
        events: list[AgentEvent] = []
        agent.subscribe(events.append)
        origins = [Origin(surface="desktop"), Origin(surface="web", device_id="w")]
        origins += [
            Origin(
                surface="channel",
                route=ChannelRoute(
                    channel="telegram",
                    chat_id=str(user),
                    user_id=str(user),
                    chat_kind="private",
                    reply_to_message_id=str(n),
                ),
            )
            for n, user in enumerate([1, 2, 3, 4])
        ]
        written: dict[str, list[str]] = {}
        sent_from: dict[str, Origin] = {}
        for step in range(60):
            action = rng.random()
            origin = rng.choice(origins)
            key = None if origin.route else rng.choice(["main", "w1", "w2"])
            if action < 0.6:
                run = hub.submit("main", f"message {step}", origin, session_key=key, mode="queue")
                runs = written.setdefault(hub.session_key_for(origin, key), [])
                if not runs or runs[-1] != run:  # a chat burst joins the turn before it
                    runs.append(run)
                sent_from[run] = origin
            elif action < 0.7:
                agent.abort(rng.choice(["main", "w1", "telegram:dm:2"]))
            elif action < 0.75:
                await agent.new_session(rng.choice(["main", "w2"]))
            else:
                for _ in range(rng.randint(1, 6)):
                    await asyncio.sleep(0)
        await agent.close(grace=rng.choice([0, 10]))

        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        by_run: dict[str, list[AgentEvent]] = {}
        order: dict[str, list[str]] = {}
        open_run: dict[str, str | None] = {}
        for event in events:
            if isinstance(event, AgentStart):
                assert open_run.get(event.session_key) is None, "runs of a session overlap"
                open_run[event.session_key] = event.run_id
                order.setdefault(event.session_key, []).append(event.run_id)
                assert event.origin == sent_from[event.run_id]
            else:
                assert open_run.get(event.session_key) == event.run_id
            by_run.setdefault(event.run_id, []).append(event)
            if isinstance(event, AgentEnd):
                open_run[event.session_key] = None
        for key, runs in order.items():
            assert runs == written[key][: len(runs)], key
        saved = {
            entry.seq: entry
            for key in agent.sessions.session_keys()
            for sid in [agent.sessions.meta(key).session_id, *agent.sessions.meta(key).previous]  # type: ignore[union-attr]
            for entry in agent.sessions.open(key, sid).entries
            if not isinstance(entry, AcceptedEntry)
        }
        for run_events in by_run.values():
            end = run_events[-1]
            assert isinstance(end, AgentEnd)
            assert saved[end.seq].type == "run"
            assert len({e.session_key for e in run_events}) == 1
            for event in run_events:
                if isinstance(event, MessageEnd):
                    entry = saved[event.seq]
                    assert isinstance(entry, MessageEntry)
                    assert (entry.text, entry.aborted) == (event.text, event.aborted)
            if end.status == "completed":
                texts = [e.text for e in run_events if isinstance(e, MessageEnd)]
                assert texts[0] == texts[1]
        await hub.close()
