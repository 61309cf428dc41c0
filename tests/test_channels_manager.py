"""ChannelManager through its seam: a second chat app (an in-memory one, a complete
ChannelPlugin) plugged in without touching the manager, driven by a real hub."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from channels.base import (
    AckStage,
    BlockLimits,
    ChannelMessage,
    ChannelPlugin,
    Choice,
    Command,
    InboundCallback,
    LiveSurface,
)
from channels.error_text import error_text
from channels.manager import ChannelManager
from channels.outbox_store import Ticket
from hub.errors import ModelError
from hub.health import SubsystemHealth
from hub.hub import Hub
from hub.model import CompactionPlan, Model, UsageReport
from hub.origin import ChannelRoute, Origin
from hub.sessions import HistoryEntry
from tests.telegram_rig import ScriptedModel, until


@dataclass
class Sent:
    kind: str
    chat_id: str
    text: str
    reply_to: str | None
    plain: bool


@dataclass
class MemoryChat:
    """A chat app that lives in memory: small blocks, a set of allowed users."""

    allowed: set[str] = field(default_factory=lambda: {"u1", "u2"})
    send_delay: float = 0.0
    sent: list[Sent] = field(default_factory=list)
    typing_calls: int = 0
    asked: list[tuple[str, str, list[Choice]]] = field(default_factory=list)
    settled: list[tuple[str, str]] = field(default_factory=list)
    reactions: list[AckStage | None] = field(default_factory=list)
    started: bool = False
    _deliver: InboundCallback | None = None

    @property
    def name(self) -> str:
        return "memory"

    @property
    def limits(self) -> BlockLimits:
        return BlockLimits(min_chars=20, max_chars=60)

    def measure(self, text: str) -> int:
        return len(text)

    async def start(self, on_message: InboundCallback) -> None:
        self._deliver = on_message
        self.started = True

    def probe(self) -> SubsystemHealth:
        return SubsystemHealth(name=self.name, status="ok")

    async def ask(self, route: ChannelRoute, text: str, choices: list[Choice]) -> str | None:
        self.asked.append((route.chat_id, text, choices))
        return f"ask-{len(self.asked)}"

    async def settle(self, route: ChannelRoute, message_id: str, text: str) -> None:
        self.settled.append((message_id, text))

    async def stop(self) -> None:
        self.started = False

    def is_allowed(self, user_id: str) -> bool:
        return user_id in self.allowed

    async def reply_text(
        self, route: ChannelRoute, text: str, *, plain: bool = False, ticket: Ticket | None = None
    ) -> bool:
        await asyncio.sleep(self.send_delay)
        self.sent.append(Sent("reply", route.chat_id, text, route.reply_to_message_id, plain))
        return True

    async def send_text(
        self, route: ChannelRoute, text: str, *, plain: bool = False, ticket: Ticket | None = None
    ) -> bool:
        await asyncio.sleep(self.send_delay)
        self.sent.append(Sent("send", route.chat_id, text, None, plain))
        return True

    async def typing(self, route: ChannelRoute) -> None:
        self.typing_calls += 1

    async def react(self, route: ChannelRoute, stage: AckStage | None) -> None:
        self.reactions.append(stage)

    @property
    def live(self) -> LiveSurface | None:
        return None

    async def say(
        self, text: str, *, chat: str = "c1", user: str = "u1", command: Command | None = None
    ) -> None:
        assert self._deliver is not None
        route = ChannelRoute(
            channel="memory", chat_id=chat, reply_to_message_id=f"{chat}-m", user_id=user
        )
        await self._deliver(ChannelMessage(route=route, text=text, command=command))

    def texts(self, chat: str = "c1") -> list[str]:
        return [s.text for s in self.sent if s.chat_id == chat]


class AlwaysCompact:
    """A compactor that compacts after every run (so compaction events are emitted)."""

    def reason(self, context: Sequence[HistoryEntry], usage: UsageReport | None) -> str | None:
        return "test"

    async def compact(
        self, context: Sequence[HistoryEntry], reason: str, previous_summary: str | None = None
    ) -> CompactionPlan:
        return CompactionPlan(first_kept_id=None, removed=0, kept=len(context), summary="s")


async def start(
    data_dir: Path, model: Model, chat: MemoryChat, *, compact: bool = False
) -> tuple[Hub, ChannelManager]:
    hub = Hub(
        data_dir,
        lambda: model,
        compactor_factory=(lambda _m: AlwaysCompact()) if compact else None,
    )
    manager = ChannelManager(hub, typing_interval=0.02)
    plugin: ChannelPlugin = chat
    manager.register(plugin)
    await manager.start()
    return hub, manager


async def settle(hub: Hub, manager: ChannelManager) -> None:
    await hub.default_agent.wait_idle()
    async with asyncio.timeout(10):
        await manager.drain()


async def stop(hub: Hub, manager: ChannelManager) -> None:
    await manager.stop()
    await hub.close()


async def test_a_second_chat_app_gets_blocks_reply_first(data_dir: Path) -> None:
    chat = MemoryChat()
    text = "First paragraph is here.\n\nSecond paragraph, a bit longer than that.\n\nThird one."
    hub, manager = await start(data_dir, ScriptedModel(text, pieces=9), chat)
    try:
        assert chat.started
        await chat.say("hello")
        await until(lambda: not hub.default_agent.busy and bool(chat.sent), "a reply")
        await settle(hub, manager)
        assert all(len(s.text) <= 60 for s in chat.sent)
        assert "".join(s.text for s in chat.sent).replace("\n", "") == text.replace("\n", "")
        assert [s.kind for s in chat.sent] == ["reply"] + ["send"] * (len(chat.sent) - 1)
        assert chat.sent[0].reply_to == "c1-m"
        await until(lambda: chat.reactions == ["working", "done"], "the acks")
        assert hub.last_route.route is not None
        assert hub.last_route.route.channel == "memory"
        # A desktop message takes the conversation back from the chat.
        hub.submit(hub.default_agent.agent_id, "back at the desk", Origin(surface="desktop"))
        assert hub.last_route.route is None
    finally:
        await stop(hub, manager)
    assert not chat.started


async def test_tool_and_compaction_events_never_reach_the_chat(data_dir: Path) -> None:
    chat = MemoryChat()
    model = ScriptedModel("Before the tool.", pieces=2, tool_between=True)
    hub, manager = await start(data_dir, model, chat, compact=True)
    seen: list[str] = []
    unsubscribe = hub.default_agent.subscribe(lambda e: seen.append(e.type))
    try:
        await chat.say("use a tool")
        await until(lambda: "compaction_end" in seen, "compaction")
        await settle(hub, manager)
        assert {"tool_execution_start", "tool_execution_end", "compaction_start"} <= set(seen)
        assert chat.texts() == ["Before the tool.", "After the tool."]
        assert chat.sent[0].kind == "reply"
        assert chat.sent[1].kind == "send"
    finally:
        unsubscribe()
        await stop(hub, manager)


async def test_interleaved_surfaces_each_get_their_own_reply(data_dir: Path) -> None:
    chat = MemoryChat()
    hub, manager = await start(data_dir, ScriptedModel(pieces=2, delay=0.01), chat)
    agent = hub.default_agent
    try:
        # All queued before the first runs: the reply is routed by the run, not by who wrote last.
        await chat.say("telegram one", chat="c1")
        hub.last_route.clear()
        agent.write("web turn", Origin(surface="web", device_id="w1"))
        await chat.say("telegram two", chat="c2", user="u2")
        agent.write("desktop turn", Origin(surface="desktop"))
        await settle(hub, manager)
        assert chat.texts("c1") == ["telegram one"]
        assert chat.texts("c2") == ["telegram two"]
        assert len(chat.sent) == 2
    finally:
        await stop(hub, manager)


async def test_unauthorised_message_is_dropped_by_the_manager_too(data_dir: Path) -> None:
    chat = MemoryChat(allowed={"u1"})
    hub, manager = await start(data_dir, ScriptedModel(), chat)
    try:
        await chat.say("let me in", user="intruder")
        await settle(hub, manager)
        assert hub.default_agent.last_run is None
        assert chat.sent == []
        assert hub.last_route.route is None
    finally:
        await stop(hub, manager)


async def test_error_text_and_typing_stop_on_failure_and_abort(data_dir: Path) -> None:
    chat = MemoryChat()
    model = ScriptedModel(delay=0.05, fail=ModelError("auth", "the API key was refused"))
    hub, manager = await start(data_dir, model, chat)
    try:
        await chat.say("hi")
        await settle(hub, manager)
        assert chat.texts() == ["hi", "[Error] the API key was refused"]
        assert chat.sent[1].plain
        # A failed run takes its working mark back and leaves no done mark.
        await until(lambda: chat.reactions == ["working", None], "the acks")
        assert manager.typing_chats() == set()
        assert chat.typing_calls >= 1

        hold = asyncio.Event()
        model.fail, model.hold = None, hold
        await chat.say("long one")
        await until(lambda: manager.typing_chats() == {("memory", "c1")}, "typing")
        await chat.say("", command="stop")
        await settle(hub, manager)
        assert manager.typing_chats() == set()
        assert "Stopped." in chat.texts()
        assert hub.default_agent.last_run is not None
        assert hub.default_agent.last_run.status == "aborted"
    finally:
        await stop(hub, manager)


async def test_a_slow_chat_app_never_holds_up_the_agent(data_dir: Path) -> None:
    chat = MemoryChat(send_delay=0.2)
    text = " ".join(f"Sentence number {i} is here." for i in range(12))
    hub, manager = await start(data_dir, ScriptedModel(text, pieces=12), chat)
    try:
        await chat.say("go")
        await until(lambda: hub.default_agent.last_run is not None, "the run to end")
        assert manager.outbox.pending("memory", "c1") > 0
        await settle(hub, manager)
        assert " ".join(s.text.strip() for s in chat.sent) == text
    finally:
        await stop(hub, manager)


async def test_register_rules(data_dir: Path) -> None:
    hub, manager = await start(data_dir, ScriptedModel(), MemoryChat())
    try:
        with pytest.raises(RuntimeError, match=r"before ChannelManager\.start"):
            manager.register(MemoryChat())
    finally:
        await stop(hub, manager)
    other = ChannelManager(hub)
    other.register(MemoryChat())
    with pytest.raises(ValueError, match="already registered"):
        other.register(MemoryChat())


def test_error_text_keeps_what_to_do_and_drops_addresses_and_keys() -> None:
    text = error_text(
        "auth",
        "the OpenAI API at https://api.openai.com/v1 refused the API key (HTTP 401): "
        "set OPENAI_API_KEY to a valid key; tried sk-abcdefghijklmnop via 10.0.0.5:8080",
    )
    assert text.startswith("[Error] the OpenAI API refused the API key (HTTP 401)")
    assert "set OPENAI_API_KEY to a valid key" in text
    for leak in ("https://", "api.openai.com", "sk-abc", "10.0.0.5", "8080"):
        assert leak not in text
    assert error_text("rate_limited", "slow down, try later") == "[Error] slow down, try later"
    unexpected = error_text("internal", "the agent failed unexpectedly (KeyError: 'x')")
    assert "check the hub's log" in unexpected
