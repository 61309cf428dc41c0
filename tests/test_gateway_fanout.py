"""Stream fan-out: the hub sends each stream event once, whatever the number of client
devices; the gateway delivers it to every client device (and to no pairing socket); answers
never wait behind stream frames."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from engineio.packet import MESSAGE, Packet
from pydantic import BaseModel, JsonValue

from gateway import relay
from gateway.link_connection import STREAM_WINDOW, GatewayConnection
from gateway.protocol import StreamFrame, StreamPayload
from gateway.sio import LanedClient, StreamPacket, _LanedQueue
from tests.test_gateway_support import (
    GATEWAY_TOKEN,
    connect_client,
    connect_device,
    eventually,
    is_stream,
    running_stack,
    stream_of,
)


async def test_each_stream_event_leaves_the_hub_once_and_reaches_every_device(
    data_dir: Path,
) -> None:
    async with running_stack(data_dir) as stack:
        devices = [await connect_client(stack.url, stack.hub, f"tab {i}") for i in range(6)]
        pairing = await connect_device(stack.url, None)
        await eventually(lambda: len(stack.link.clients) == 6)
        sent: list[BaseModel] = []
        emit = stack.link.connection.emit

        async def counting(frame: BaseModel, *, answer: bool = False) -> bool:
            sent.append(frame)
            return await emit(frame, answer=answer)

        stack.link.connection.emit = counting  # type: ignore[method-assign]
        await devices[0].message("to every tab")
        seen = []
        for device in devices:
            frames: list[StreamPayload] = []
            while not frames or frames[-1].event["type"] != "agent_end":
                frames.append(stream_of(await device.next_frame(lambda f: f["action"] == "stream")))
            seen.append([(f.stream_id, f.seq) for f in frames])
        streams = [f for f in sent if isinstance(f, StreamFrame)]
        assert [(f.payload.stream_id, f.payload.seq) for f in streams] == seen[0]
        assert all(s == seen[0] for s in seen)  # the same frames, the same seq, everywhere
        assert {f.to for f in streams} == {"*"}
        assert "receive" not in pairing.events
        for device in devices:
            await device.close()
        await pairing.close()


async def test_only_hubs_may_address_every_client(data_dir: Path) -> None:
    async with running_stack(data_dir) as stack:
        client = await connect_client(stack.url, stack.hub)
        stream: JsonValue = {
            "agentId": "main",
            "streamId": "s",
            "seq": 0,
            "event": {"type": "agent_start"},
        }
        await client.send("*", "stream", stream)
        assert (await client.next_error()).code == "UNAUTHORIZED"
        await client.send("*", "message", {"agentId": "main", "content": "to all"})
        refused = await client.next_error()
        assert refused.code == "INVALID_MESSAGE"
        assert refused.message.startswith("message.to")
        await client.message("still fine")
        await client.next_frame(is_stream("agent_end"))
        await client.close()


class _SilentGateway(LanedClient):
    """Stands in for the Socket.IO client of a gateway that never acknowledges."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, object]] = []
        self.acks: list[Callable[..., object]] = []
        self.streams: list[dict[str, object]] = []

    async def emit(self, event: str, data: dict[str, object]) -> None:
        self.sent.append(data)

    async def emit_stream(
        self, event: str, data: object, callback: Callable[..., object] | None = None
    ) -> None:
        assert isinstance(data, dict) and callback is not None
        self.sent.append(data)
        self.streams.append(data)
        self.acks.append(callback)


async def test_answers_never_wait_behind_unacknowledged_stream_frames() -> None:
    async def ignore(data: object) -> None:
        return None

    connection = GatewayConnection("http://127.0.0.1:9", GATEWAY_TOKEN, "hub", ignore)
    gateway = _SilentGateway()
    connection._client = gateway
    connection._linked.set()

    def frame(action: str, n: int) -> BaseModel:
        class Frame(BaseModel):
            id: str
            action: str

        return Frame(id=f"f{n}", action=action)

    for n in range(STREAM_WINDOW):
        assert await connection.emit(frame("stream", n))
    held = asyncio.get_running_loop().create_task(connection.emit(frame("stream", 99)))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not held.done()  # the window is full: the stream waits for an ack
    assert await connection.emit(frame("response", 100), answer=True)
    assert [d["id"] for d in gateway.sent][-1:] == ["f100"]  # the answer went out at once
    assert "f100" not in [d["id"] for d in gateway.streams]  # ahead of queued stream frames
    gateway.acks.pop(0)()
    assert await held
    assert [d["id"] for d in gateway.sent][-1:] == ["f99"]


def _data(item: object) -> object:
    return item.data if isinstance(item, Packet) else item


async def test_every_packet_overtakes_queued_stream_packets_and_each_lane_keeps_order() -> None:
    queue = _LanedQueue()
    for name in ("s1", "s2"):
        queue.put_nowait(StreamPacket(MESSAGE, name))
    queue.put_nowait(Packet(MESSAGE, "a1"))
    queue.put_nowait(StreamPacket(MESSAGE, "s3"))
    queue.put_nowait(Packet(MESSAGE, "a2"))
    assert [_data(queue.get_nowait()) for _ in range(3)] == ["a1", "a2", "s1"]
    queue.put_nowait(Packet(MESSAGE, "a3"))
    queue.put_nowait(None)  # the writer's stop mark: queued stream packets are not waited for
    assert [_data(queue.get_nowait()) for _ in range(queue.qsize())] == ["a3", None, "s2", "s3"]


def test_only_stream_frames_take_the_back_lane() -> None:
    assert relay.is_stream("receive", {"action": "stream", "payload": {}})
    for data in ({"action": "response"}, {"action": "message"}, {"action": "request"}):
        assert not relay.is_stream("receive", data)
    assert not relay.is_stream("send_error", {"code": "RATE_LIMITED"})
    assert not relay.is_stream("devices", {"devices": []})
    for data in ({"action": "response"}, {"action": "message"}, {"action": "request"}):
        assert not relay.is_stream("receive", data)
    assert not relay.is_stream("send_error", {"code": "RATE_LIMITED"})
    assert not relay.is_stream("devices", {"devices": []})


async def test_a_waiting_writer_is_handed_the_next_packet_in_lane_order() -> None:
    queue = _LanedQueue()
    waiting = queue.get()  # a future, not a coroutine: waiting on it takes no task
    assert isinstance(waiting, asyncio.Future) and not waiting.done()
    gave_up = queue.get()
    gave_up.cancel()  # as `asyncio.wait_for` does when the writer's wait times out
    later = queue.get()
    queue.put_nowait(StreamPacket(MESSAGE, "s1"))
    queue.put_nowait(Packet(MESSAGE, "a1"))
    assert [_data(waiting.result()), _data(later.result())] == ["s1", "a1"]
    queue.put_nowait(StreamPacket(MESSAGE, "s2"))
    queue.put_nowait(Packet(MESSAGE, "a2"))
    assert [_data(await asyncio.wait_for(queue.get(), 1)) for _ in range(2)] == ["a2", "s2"]
    for _ in range(4):
        queue.task_done()
    await asyncio.wait_for(queue.join(), 1)  # what the library's close(wait=True) waits on
