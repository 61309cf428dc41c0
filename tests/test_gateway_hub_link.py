"""The hub link: requests, event forwarding, coalescing, and surviving an absent gateway."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import SecretStr

from gateway.config import GatewayConfig
from gateway.hub_link import HubLink
from gateway.server import GatewayServer
from gateway.streams import Coalescer
from hub.echo import EchoModel
from hub.events import MessageUpdate, ReadGap
from hub.hub import Hub
from hub.origin import Origin
from hub.requests.agents import AgentsAnswer, HistoryAnswer, StatusAnswer
from hub.service import attach_probes
from tests.conftest import free_port
from tests.test_gateway_support import (
    GATEWAY_TOKEN,
    FailingModel,
    ToolModel,
    assistant_texts,
    connect_client,
    eventually,
    is_stream,
    running_stack,
    stream_of,
)


async def test_requests_are_answered(data_dir: Path) -> None:
    async with running_stack(data_dir, agent_ids=("main", "work")) as stack:
        client = await connect_client(stack.url, stack.hub)
        agents = await client.request("agents.list", {})
        assert agents.ok
        listed = AgentsAnswer.model_validate(agents.payload)
        assert [a.agent_id for a in listed.agents] == ["main", "work"]
        status = await client.request("status", {})
        assert {s.name for s in StatusAnswer.model_validate(status.payload).health.subsystems} >= {
            "gateway",
            "hub_link",
            "model",
        }
        for text in ("one", "two", "three"):
            await client.message(text, agent_id="work")
            await client.next_frame(is_stream("agent_end"))
        history = await client.history("work")
        assert assistant_texts(history) == ["one", "two", "three"]
        older = await client.request(
            "history", {"agentId": "work", "limit": 10, "before": history.entries[-1].seq}
        )
        assert assistant_texts(HistoryAnswer.model_validate(older.payload)) == ["one", "two"]
        assert assistant_texts(await client.history("main")) == []
        await client.close()


async def test_bad_requests_and_messages_get_error_responses(data_dir: Path) -> None:
    async with running_stack(data_dir) as stack:
        client = await connect_client(stack.url, stack.hub)
        unknown = await client.request("format.disk", {})
        assert unknown.error is not None
        assert (unknown.ok, unknown.error.code) == (False, "unknown_method")
        bad = await client.request("history", {"agentId": "main", "limit": "lots"})
        assert bad.error is not None
        assert bad.error.code == "invalid_params"
        assert "limit" in bad.error.message
        missing = await client.request("abort", {"agentId": "nobody"})
        assert missing.error is not None
        assert missing.error.code == "unknown_agent"
        frame_id = await client.message("hi", agent_id="nobody")
        answer = await client.next_frame(lambda f: f["action"] == "response")
        assert answer["payload"] == {
            "requestId": frame_id,
            "ok": False,
            "payload": None,
            "error": {"code": "unknown_agent", "message": "no agent 'nobody'"},
        }
        empty_id = await client.message("   ")
        empty = await client.next_frame(lambda f: f["action"] == "response")
        assert empty["payload"]["requestId"] == empty_id  # type: ignore[index, call-overload]
        assert empty["payload"]["error"]["code"] == "empty"  # type: ignore[index, call-overload]
        await client.close()


async def test_abort_stops_the_running_reply(data_dir: Path) -> None:
    async with running_stack(
        data_dir, model_factory=lambda: EchoModel(pieces=200, delay=0.05)
    ) as stack:
        client = await connect_client(stack.url, stack.hub)
        await client.message("a long reply " * 20)
        await client.next_frame(is_stream("message_update"))
        aborted = await client.request("abort", {"agentId": "main"})
        assert aborted.payload == {"aborted": True}
        end = stream_of(await client.next_frame(is_stream("agent_end")))
        assert end.event["status"] == "aborted"
        await client.close()


async def test_tool_rows_and_agent_errors_reach_the_client(data_dir: Path) -> None:
    async with running_stack(data_dir, model_factory=ToolModel) as stack:
        client = await connect_client(stack.url, stack.hub)
        await client.message("meaning of life")
        start = stream_of(await client.next_frame(is_stream("tool_execution_start")))
        assert start.event["toolName"] == "lookup"
        end = stream_of(await client.next_frame(is_stream("tool_execution_end")))
        assert (end.event["result"], end.event["isError"]) == ({"answer": 42}, False)
        final = stream_of(await client.next_frame(is_stream("message_end")))
        assert final.event["text"] == "The answer is **42**."
        await client.close()
    async with running_stack(data_dir / "failing", model_factory=FailingModel) as stack:
        client = await connect_client(stack.url, stack.hub)
        await client.message("hello")
        types: list[str] = []
        while not types or types[-1] != "agent_end":
            frame = stream_of(await client.next_frame(lambda f: f["action"] == "stream"))
            types.append(str(frame.event["type"]))
            if frame.event["type"] == "agent_error":
                assert frame.event["code"] == "auth"
                assert "OPENAI_API_KEY" in str(frame.event["message"])
        assert "agent_error" in types
        assert "legacy_error" not in types  # agent_error carries it, structured
        await client.close()


async def test_updates_are_coalesced_and_the_final_text_is_exact(data_dir: Path) -> None:
    text = "".join(f"word{i} " for i in range(200))
    async with running_stack(
        data_dir, model_factory=lambda: EchoModel(pieces=200, delay=0.001)
    ) as stack:
        client = await connect_client(stack.url, stack.hub)
        await client.message(text)
        updates = 0
        while True:
            frame = stream_of(await client.next_frame(lambda f: f["action"] == "stream"))
            if frame.event["type"] == "message_update":
                updates += 1
                assert text.startswith(str(frame.event["text"]))
            if frame.event["type"] == "message_end":
                assert frame.event["text"] == text
                break
        assert 1 <= updates < 200
        await client.close()


def test_coalescer_sends_the_first_update_and_then_one_per_window() -> None:
    now = [0.0]
    coalescer = Coalescer(0.04, lambda: now[0])

    def update(text: str, message_id: str = "m1") -> MessageUpdate:
        return MessageUpdate(
            agent_id="a",
            run_id="r",
            seq=1,
            message_id=message_id,
            role="assistant",
            text=text,
            delta=text[-1:],
        )

    assert coalescer.offer(update("a"))
    assert not coalescer.offer(update("ab"))
    assert not coalescer.offer(update("abc"))
    assert coalescer.wait_time() == 0.04
    assert coalescer.due() == []
    now[0] = 0.05
    assert [u.text for u in coalescer.due()] == ["abc"]
    assert coalescer.wait_time() is None
    assert not coalescer.offer(update("abcd"))
    assert coalescer.offer(update("x", "m2"))
    coalescer.drop("m1")
    assert coalescer.flush() == []


async def test_the_link_outlives_an_absent_gateway_and_links_when_it_appears(
    data_dir: Path,
) -> None:
    port = free_port()
    hub = Hub(data_dir, lambda: EchoModel(pieces=3))
    link = HubLink(hub, f"http://127.0.0.1:{port}", GATEWAY_TOKEN, backoff_max=0.3)
    await link.start()
    attach_probes(hub.health, link)
    try:
        assert hub.health.report().subsystems[0].name == "hub_link"
        assert not link.linked
        # Frames produced while the gateway is away are dropped, never buffered: the consumer
        # goes on, and the client catches up from history once it connects.
        link.agent_senders["main"] = "web-away"
        agent = hub.default_agent
        agent.write("while the gateway is away", Origin(surface="web", device_id="web-away"))
        await agent.wait_idle()
        await eventually(lambda: link.dropped_frames >= 4)
        gateway = GatewayServer(
            GatewayConfig(port=port, gateway_token=SecretStr(GATEWAY_TOKEN)), hub.access, hub.health
        )
        await gateway.start()
        try:
            async with asyncio.timeout(10):
                await link.wait_linked()
            client = await connect_client(f"http://127.0.0.1:{port}", hub)
            history = await client.history()
            assert assistant_texts(history) == ["while the gateway is away"]
            await client.message("now linked")
            end = stream_of(await client.next_frame(is_stream("message_end")))
            assert end.event["text"] == "now linked"
            await client.close()
        finally:
            await gateway.stop()
        await eventually(lambda: not link.linked)
        health = {s.name: s for s in hub.health.report().subsystems}
        assert health["hub_link"].status == "degraded"
    finally:
        await link.stop()
        await hub.close()


async def test_history_is_trimmed_to_fit_one_frame(data_dir: Path) -> None:
    async with running_stack(data_dir) as stack:
        stack.link.max_frame_bytes = 8192
        client = await connect_client(stack.url, stack.hub)
        for i in range(12):
            await client.message(f"message {i} " + "x" * 1000)
            await client.next_frame(is_stream("agent_end"))
        history = await client.history()
        assert history.truncated
        assert 0 < len(history.entries) < 24
        assert assistant_texts(history)[-1].startswith("message 11 ")
        await client.close()


async def test_a_hub_that_fell_behind_tells_clients_to_refetch(data_dir: Path) -> None:
    async with running_stack(data_dir) as stack:
        client = await connect_client(stack.url, stack.hub)
        await eventually(lambda: client.device_id in stack.link.clients)
        # What the agent's read() yields when this consumer fell behind (see hub.fanout).
        gap = ReadGap(agent_id="main", dropped=7, first_seq=3, last_seq=9)
        await stack.link.forwarders["main"].handle(gap)
        frame = stream_of(await client.next_frame(is_stream("read_gap")))
        assert frame.stream_id == "read_gap"
        assert frame.event == gap.model_dump(mode="json")
        await client.close()
