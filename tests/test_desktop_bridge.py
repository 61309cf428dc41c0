"""The desktop bridge without a window: a real Hub (echo model) on its own loop thread, called
from other threads as pywebview calls it, with pushes collected where the page would run them.
The push scripts are run by a real JS engine (node) to prove what the page receives."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import BaseModel, JsonValue, TypeAdapter

from desktop.batcher import PushBatcher, push_script
from desktop.bridge import DesktopApi, DesktopBridge, PageGate
from desktop.protocol import (
    BridgeError,
    BridgeReply,
    PairingPush,
    Push,
    SendAnswer,
    StreamPush,
)
from hub.echo import EchoModel
from hub.events import (
    AgentEnd,
    AgentEvent,
    AgentStart,
    MessageEnd,
    MessageStart,
    MessageUpdate,
    ReadGap,
)
from hub.filters import forward
from hub.hub import Hub
from hub.origin import ChannelRoute
from hub.requests import RequestHost
from hub.requests.access import DecisionAnswer, PairListAnswer
from hub.requests.agents import AbortAnswer, AgentParams, AgentsAnswer, HistoryAnswer, StatusAnswer
from hub.sessions import MessageEntry
from tests.conftest import require_binary

T = TypeVar("T")
A = TypeVar("A", bound=BaseModel)
PUSHES: TypeAdapter[list[Push]] = TypeAdapter(list[Push])


class PageSink:
    """Where the page would run push scripts: keeps each script and what it carried."""

    def __init__(self) -> None:
        self.scripts: list[str] = []
        self.pushes: list[Push] = []
        self.changed = threading.Condition()

    def __call__(self, script: str) -> None:
        prefix = "window.agenthubDesktop&&window.agenthubDesktop.receive("
        assert script.startswith(prefix)
        assert script.endswith(")")
        batch = PUSHES.validate_json(json.loads(script[len(prefix) : -1]))
        with self.changed:
            self.scripts.append(script)
            self.pushes.extend(batch)
            self.changed.notify_all()

    def wait_for(self, predicate: Callable[[list[Push]], bool], timeout: float = 10.0) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: predicate(self.pushes), timeout), self.pushes

    def events(self) -> list[AgentEvent]:
        return events_of(self.pushes)


def events_of(pushes: list[Push]) -> list[AgentEvent]:
    return [
        p.event for p in pushes if isinstance(p, StreamPush) and not isinstance(p.event, ReadGap)
    ]


def runs_ended(count: int) -> Callable[[list[Push]], bool]:
    return lambda pushes: sum(isinstance(e, AgentEnd) for e in events_of(pushes)) >= count


def has_event(kind: type[AgentEvent]) -> Callable[[list[Push]], bool]:
    return lambda pushes: any(isinstance(e, kind) for e in events_of(pushes))


@dataclass
class Rig:
    hub: Hub
    loop: asyncio.AbstractEventLoop
    bridge: DesktopBridge
    api: DesktopApi
    gate: PageGate
    batcher: PushBatcher
    sink: PageSink

    def on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)

    def call(self, method: str, *args: JsonValue) -> BridgeReply:
        """Call the API from a fresh thread, as pywebview does, and read its JSON answer."""
        answer: list[str] = []
        api = self.api
        thread = threading.Thread(
            target=lambda: answer.append(json.dumps(getattr(api, method)(*args)))
        )
        thread.start()
        thread.join(15)
        assert answer, f"{method} did not answer"
        return BridgeReply.model_validate_json(answer[0])

    def answer(self, model: type[A], method: str, *args: JsonValue) -> A:
        reply = self.call(method, *args)
        assert reply.ok, reply.error
        return model.model_validate(reply.payload)

    def refused(self, method: str, *args: JsonValue) -> BridgeError:
        reply = self.call(method, *args)
        assert not reply.ok
        assert reply.error is not None
        return reply.error

    def everything(self) -> list[AgentEvent]:
        """A second, unfiltered subscriber's view, to compare with the filter table."""
        seen: list[AgentEvent] = []

        async def subscribe() -> None:
            self.hub.default_agent.subscribe(seen.append, name="test")

        self.on_loop(subscribe())
        return seen


@contextlib.contextmanager
def make_rig(
    data_dir: Path, *, interval: float = 0.016, max_items: int = 10_000, coalesce: bool = True
) -> Iterator[Rig]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    sink = PageSink()
    batcher = PushBatcher(sink, interval=interval, max_items=max_items, coalesce=coalesce)

    async def setup() -> tuple[Hub, DesktopBridge]:
        hub = Hub(data_dir, lambda: EchoModel(pieces=8))
        host = RequestHost(access=hub.access, health=hub.health, hub=hub)
        bridge = DesktopBridge(hub, host, batcher, pairing_poll=0.05)
        await bridge.start()
        return hub, bridge

    hub, bridge = asyncio.run_coroutine_threadsafe(setup(), loop).result(10)
    gate = PageGate(batcher)
    batcher.start()
    rig = Rig(hub, loop, bridge, DesktopApi(bridge, gate), gate, batcher, sink)
    try:
        yield rig
    finally:
        batcher.stop()
        rig.on_loop(bridge.stop())
        rig.on_loop(hub.close())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@pytest.fixture
def rig(data_dir: Path) -> Iterator[Rig]:
    with make_rig(data_dir) as rig:
        yield rig


def wait_idle(rig: Rig) -> None:
    rig.on_loop(rig.hub.default_agent.wait_idle())


def test_send_clears_last_route_and_writes_with_a_desktop_origin(rig: Rig) -> None:
    rig.hub.last_route.set(ChannelRoute(channel="telegram", chat_id="42"))
    seen = rig.everything()
    sent = rig.answer(SendAnswer, "send", "main", "hello from the window")
    assert rig.hub.last_route.route is None
    wait_idle(rig)
    start = next(e for e in seen if isinstance(e, AgentStart))
    assert start.origin.surface == "desktop"
    assert sent.run_id == start.run_id


def test_pushes_are_the_desktop_row_of_the_filter_table(data_dir: Path) -> None:
    with make_rig(data_dir, coalesce=False) as rig:
        check_filter_row(rig)


def check_filter_row(rig: Rig) -> None:
    seen = rig.everything()
    assert rig.call("subscribe", "main").ok
    rig.call("send", "main", "one two three four five six seven eight")
    wait_idle(rig)
    rig.sink.wait_for(runs_ended(1))
    pushed = rig.sink.events()
    assert [e.seq for e in pushed] == [e.seq for e in seen if forward("desktop", e)]
    assert any(isinstance(e, MessageStart) and e.role == "user" for e in seen)
    assert not any(getattr(e, "role", None) == "user" for e in pushed)
    final = next(e for e in pushed if isinstance(e, MessageEnd))
    assert final.text == "one two three four five six seven eight"
    stream = [p for p in rig.sink.pushes if isinstance(p, StreamPush)]
    assert all(isinstance(p.event, ReadGap) or p.stream_id == p.event.run_id for p in stream)


def test_a_newer_update_replaces_a_queued_one_of_the_same_message(data_dir: Path) -> None:
    with make_rig(data_dir, interval=0.2) as rig:
        seen = rig.everything()
        rig.call("subscribe", "main")
        rig.call("send", "main", "one two three four five six seven eight")
        wait_idle(rig)
        rig.sink.wait_for(runs_ended(1))
        pushed = rig.sink.events()
        forwarded = [e for e in seen if forward("desktop", e)]
        # Every event but superseded updates arrives, in order; the text is never lost.
        assert [e.seq for e in pushed] == [
            e.seq for e in forwarded if not isinstance(e, MessageUpdate) or e in pushed
        ]
        assert [e.type for e in pushed if not isinstance(e, MessageUpdate)] == [
            e.type for e in forwarded if not isinstance(e, MessageUpdate)
        ]
        assert rig.batcher.stats.superseded > 0
        final = next(e for e in pushed if isinstance(e, MessageEnd))
        assert final.text == "one two three four five six seven eight"


def test_coalescing_keeps_other_messages_and_order() -> None:
    delivered: list[str] = []
    batcher = PushBatcher(lambda script: delivered.append(script), interval=0.0)
    batcher.open()
    for item, key in [("1", None), ("2", "a"), ("3", "b"), ("4", "a"), ("5", None), ("6", "a")]:
        batcher.push(item, key)
    assert batcher.pending == 4
    batcher.start()
    batcher.stop()
    assert delivered == [push_script(["1", "3", "5", "6"])]
    assert batcher.stats.superseded == 2


def test_events_are_batched_into_few_scripts(data_dir: Path) -> None:
    with make_rig(data_dir, interval=0.05) as rig:
        rig.call("subscribe", "main")
        for n in range(5):
            rig.call("send", "main", f"message number {n} with several words to stream back")
        wait_idle(rig)
        rig.sink.wait_for(runs_ended(5))
        events = rig.sink.events()
        assert len(rig.sink.scripts) < len(events) / 3
        assert [e.seq for e in events] == sorted(e.seq for e in events)
        assert rig.batcher.stats.items == len(rig.sink.pushes)


def test_unbatched_mode_sends_one_script_per_event(data_dir: Path) -> None:
    with make_rig(data_dir, interval=0.0, max_items=1) as rig:
        rig.call("subscribe", "main")
        rig.call("send", "main", "a few words to echo")
        wait_idle(rig)
        rig.sink.wait_for(runs_ended(1))
        assert len(rig.sink.scripts) == len(rig.sink.pushes)


def test_subscribe_twice_keeps_one_subscription(rig: Rig) -> None:
    rig.call("subscribe", "main")
    rig.call("subscribe", "main")
    rig.call("send", "main", "once")
    wait_idle(rig)
    rig.sink.wait_for(runs_ended(1))
    seqs = [e.seq for e in rig.sink.events()]
    assert len(seqs) == len(set(seqs))


HOSTILE = [
    "</script><script>globalThis.pwned = true</script>",
    '"); globalThis.pwned = true; ("',
    "'); globalThis.pwned = true; //",
    "line\u2028separator\u2029paragraph",
    "back\\slash \\u0022 and `${globalThis.pwned = true}`",
    "emoji 🎉 and \x00 nul and <!-- comment -->",
]


def test_push_script_carries_any_text_as_data_only() -> None:
    node = require_binary("node", "runs the push scripts in a real JS engine")
    items = [json.dumps({"kind": "x", "text": text}) for text in HOSTILE]
    script = push_script(items)
    assert script.isascii()
    program = (
        "globalThis.window = globalThis; globalThis.pwned = false; let got;\n"
        "window.agenthubDesktop = { receive: (s) => { got = JSON.parse(s); return got.length } };\n"
        f"const n = {script};\n"
        "process.stdout.write(JSON.stringify({n, pwned: globalThis.pwned, got}));\n"
    )
    out = subprocess.run([node, "-e", program], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result["pwned"] is False
    assert result["n"] == len(HOSTILE)
    assert [item["text"] for item in result["got"]] == HOSTILE


def test_agent_text_round_trips_through_a_push(rig: Rig) -> None:
    rig.call("subscribe", "main")
    for text in HOSTILE[:4]:
        rig.call("send", "main", text)
    wait_idle(rig)
    rig.sink.wait_for(runs_ended(4))
    ends = [e.text for e in rig.sink.events() if isinstance(e, MessageEnd)]
    assert ends == HOSTILE[:4]


def test_bad_calls_answer_errors_and_change_nothing(rig: Rig) -> None:
    assert rig.refused("send", "nobody", "hi").code == "unknown_agent"
    assert rig.refused("send", "main", "   ").code == "empty"
    not_text = rig.refused("send", "main", 5)
    assert not_text.code == "invalid_params"
    assert "text" in not_text.message
    assert (
        rig.refused("request", "history", {"agentId": "main", "limit": 10_000}).code
        == "invalid_params"
    )
    assert rig.refused("subscribe", "../etc").code == "unknown_agent"
    assert rig.hub.default_agent.history() == []
    assert rig.hub.default_agent.last_run is None


def test_history_agents_status_and_abort(rig: Rig) -> None:
    rig.call("send", "main", "remember this")
    wait_idle(rig)
    history = rig.answer(HistoryAnswer, "request", "history", {"agentId": "main", "limit": 10})
    assert [e.role for e in history.entries if isinstance(e, MessageEntry)] == ["user", "assistant"]
    assert history.last_seq == rig.hub.default_agent.last_seq
    assert rig.answer(AgentsAnswer, "request", "agents.list").agents[0].agent_id == "main"
    assert rig.answer(StatusAnswer, "request", "status").health.status in ("ok", "degraded")
    assert rig.answer(AbortAnswer, "request", "abort", {"agentId": "main"}).aborted is False


def test_abort_stops_a_running_reply(data_dir: Path) -> None:
    with make_rig(data_dir) as rig:
        rig.hub.default_agent.model = EchoModel(pieces=50, delay=0.2)
        rig.call("subscribe", "main")
        rig.call("send", "main", "a long reply " * 20)
        rig.sink.wait_for(has_event(MessageUpdate))
        assert rig.answer(AbortAnswer, "request", "abort", {"agentId": "main"}).aborted is True
        wait_idle(rig)
        rig.sink.wait_for(has_event(MessageEnd))
        end = next(e for e in rig.sink.events() if isinstance(e, MessageEnd))
        assert end.aborted is True


def test_pairing_requests_are_pushed_and_approved_from_the_window(rig: Rig) -> None:
    rig.call("subscribe", "main")

    async def ask() -> str:
        return rig.hub.access.request("device", "web-phone", "Phone").code

    code = rig.on_loop(ask())
    # New requests are found by polling.
    rig.sink.wait_for(lambda p: any(isinstance(x, PairingPush) and x.pending for x in p))
    listed = rig.answer(PairListAnswer, "request", "pair.list")
    assert [r.code for r in listed.pending] == [code]
    reply = rig.call("request", "pair.approve", {"code": code})
    assert "token" not in json.dumps(reply.payload)
    decision = DecisionAnswer.model_validate(reply.payload)
    assert decision == DecisionAnswer(
        code=code, approved=True, kind="device", subject="web-phone", label="Phone"
    )
    assert [d.device_id for d in rig.hub.access.devices()] == ["web-phone"]
    # The decision empties the list on the page.
    rig.sink.wait_for(lambda p: isinstance(p[-1], PairingPush) and p[-1].pending == [])
    assert rig.refused("request", "pair.deny", {"code": code}).code == "invalid_code"


def test_pairing_deny_from_the_window(rig: Rig) -> None:
    async def ask() -> str:
        return rig.hub.access.request("channel", "telegram:77", "@someone").code

    code = rig.on_loop(ask())
    assert rig.answer(DecisionAnswer, "request", "pair.deny", {"code": code}).approved is False
    assert rig.hub.access.channel_users() == []
    assert rig.hub.access.pending() == []


def test_an_untrusted_page_can_call_nothing_and_hears_nothing(rig: Rig) -> None:
    rig.call("subscribe", "main")
    rig.gate.set(False)
    assert rig.refused("send", "main", "from a foreign page").code == "forbidden"
    assert rig.refused("request", "pair.list").code == "forbidden"
    assert rig.refused("open_link", "https://example.org/").code == "forbidden"
    rig.gate.set(True)
    # Our page loaded again, but pushes wait for it to subscribe.
    rig.call("send", "main", "not pushed")
    wait_idle(rig)
    assert rig.sink.events() == []


def test_open_link_refuses_other_schemes(rig: Rig) -> None:
    urls: list[JsonValue] = ["javascript:alert(1)", "file:///etc/passwd", 7]
    for url in urls:
        assert rig.refused("open_link", url).code == "invalid_params"


def test_a_slow_page_holds_the_subscriber_back_without_losing_the_reply(data_dir: Path) -> None:
    page = PageSink()
    opened = threading.Event()

    def slow_page(script: str) -> None:
        opened.wait(10)
        page(script)

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    batcher = PushBatcher(slow_page, interval=0.0, max_items=1)

    async def run() -> int:
        hub = Hub(data_dir, lambda: EchoModel(pieces=40))
        host = RequestHost(access=hub.access, health=hub.health, hub=hub)
        bridge = DesktopBridge(hub, host, batcher, max_pending_pushes=3)
        await bridge.start()
        await bridge.subscribe(AgentParams(agent_id="main"))
        hub.default_agent.write("x" * 400)
        await hub.default_agent.wait_idle()
        # The agent finished although the page took nothing yet: the bridge held back.
        held = batcher.pending
        opened.set()
        await asyncio.to_thread(page.wait_for, runs_ended(1))
        await bridge.stop()
        await hub.close()
        return held

    batcher.start()
    try:
        held = asyncio.run_coroutine_threadsafe(run(), loop).result(30)
    finally:
        batcher.stop()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    assert held <= 3
    ends = [e for e in page.events() if isinstance(e, MessageEnd)]
    assert [e.text for e in ends] == ["x" * 400]


async def test_stop_finishes_when_a_pairing_change_lands_as_it_stops(data_dir: Path) -> None:
    """The watcher's wait must not swallow stop()'s cancellation when the change event is set
    in the same loop turn (asyncio.wait_for on 3.11 did: stop() then hung forever)."""
    hub = Hub(data_dir, EchoModel)
    host = RequestHost(access=hub.access, health=hub.health, hub=hub)
    bridge = DesktopBridge(hub, host, PushBatcher(lambda script: None), pairing_poll=30)
    await bridge.start()
    try:
        for _ in range(5):
            await asyncio.sleep(0)
            asked = hub.access.request("channel", "telegram:9", "Nine")
            hub.access.deny(asked.code)  # the listener sets the change event
            await asyncio.sleep(0)
            stopping = asyncio.ensure_future(bridge.stop())
            async with asyncio.timeout(5):
                await stopping
            await bridge.start()
    finally:
        await bridge.stop()
        await hub.close()
