"""The gateway end to end with real python-socketio clients: routing, auth, bad frames, limits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import socketio

from gateway.protocol import StreamPayload
from hub.echo import EchoModel
from tests.test_gateway_support import (
    GATEWAY_TOKEN,
    connect_client,
    connect_device,
    eventually,
    is_stream,
    reply_is,
    running_stack,
    stream_of,
)


async def test_message_streams_the_reply_back_with_per_stream_seq(data_dir: Path) -> None:
    async with running_stack(data_dir) as stack:
        client = await connect_client(stack.url, stack.hub)
        frame_id = await client.message("hello there, agent")
        accepted = await client.next_frame(lambda f: f["action"] == "response")
        assert accepted["from"] == "hub"
        assert accepted["payload"]["requestId"] == frame_id  # type: ignore[index, call-overload]
        assert accepted["payload"]["ok"] is True  # type: ignore[index, call-overload]
        frames: list[StreamPayload] = []
        while not frames or frames[-1].event["type"] != "agent_end":
            frames.append(stream_of(await client.next_frame(lambda f: f["action"] == "stream")))
        types = [f.event["type"] for f in frames]
        assert types[0] == "agent_start"
        assert "message_start" in types
        assert [f.seq for f in frames] == list(range(len(frames)))
        assert {f.stream_id for f in frames} == {frames[0].event["runId"]}
        ends = [f.event for f in frames if f.event["type"] == "message_end"]
        assert [e["text"] for e in ends] == ["hello there, agent"]
        assert all(e.get("role") == "assistant" for e in ends)
        assert stack.link.agent_senders == {"main": client.device_id}
        await client.close()


async def test_every_client_device_of_the_owner_sees_the_reply(data_dir: Path) -> None:
    async with running_stack(data_dir) as stack:
        sender = await connect_client(stack.url, stack.hub, "laptop")
        other = await connect_client(stack.url, stack.hub, "phone")
        await eventually(lambda: {sender.device_id, other.device_id} <= stack.link.clients)
        await sender.message("for both tabs")
        for device in (sender, other):
            end = stream_of(await device.next_frame(is_stream("message_end")))
            assert end.event["text"] == "for both tabs"
        await sender.close()
        await other.close()


async def test_web_message_clears_last_route_and_runs_with_a_web_origin(data_dir: Path) -> None:
    from hub.origin import ChannelRoute

    async with running_stack(data_dir) as stack:
        stack.hub.last_route.set(ChannelRoute(channel="telegram", chat_id="1"))
        client = await connect_client(stack.url, stack.hub)
        await client.message("from the browser")
        start = stream_of(await client.next_frame(is_stream("agent_start")))
        assert start.event["origin"] == {"surface": "web", "deviceId": client.device_id}
        assert stack.hub.last_route.route is None
        await client.close()


async def test_spoofed_from_is_refused_and_the_connection_carries_on(data_dir: Path) -> None:
    async with running_stack(data_dir) as stack:
        client = await connect_client(stack.url, stack.hub)
        spoofed = await client.send(
            "hub", "message", {"agentId": "main", "content": "x"}, sender="hub"
        )
        error = await client.next_error()
        assert (error.message_id, error.code) == (spoofed, "UNAUTHORIZED")
        await client.message("still here")
        end = stream_of(await client.next_frame(is_stream("message_end")))
        assert end.event["text"] == "still here"
        await client.close()


@pytest.mark.parametrize(
    ("frame", "detail"),
    [
        ("not a frame", "JSON object"),
        (
            {"id": "f1", "from": "X", "to": "hub", "action": "dance", "payload": {}},
            "unknown action",
        ),
        ({"id": "f1", "from": "X", "to": "hub", "action": "message", "payload": {}}, "agentId"),
        ({"id": "f1", "from": "X", "to": "hub", "payload": {}}, "missing action"),
    ],
)
async def test_malformed_frames_get_invalid_message_and_others_carry_on(
    data_dir: Path, frame: object, detail: str
) -> None:
    async with running_stack(data_dir) as stack:
        bad = await connect_client(stack.url, stack.hub)
        good = await connect_client(stack.url, stack.hub)
        if isinstance(frame, dict):
            frame["from"] = bad.device_id
        await bad.client.emit("send", frame)
        error = await bad.next_error()
        assert error.code == "INVALID_MESSAGE"
        assert detail in error.message
        assert error.message_id == (frame.get("id") if isinstance(frame, dict) else None)
        # Both devices are the owner's, so both see both replies; each waits for its own.
        await good.message("unaffected")
        await good.next_frame(reply_is("unaffected"))
        await bad.message("me too")
        await bad.next_frame(reply_is("me too"))
        await bad.close()
        await good.close()


async def test_oversized_frame_gets_too_large_and_the_connection_carries_on(
    data_dir: Path,
) -> None:
    async with running_stack(data_dir, max_frame_bytes=4096) as stack:
        client = await connect_client(stack.url, stack.hub)
        big = await client.message("x" * 10_000)
        error = await client.next_error()
        assert (error.message_id, error.code) == (big, "TOO_LARGE")
        await client.message("small")
        assert stream_of(await client.next_frame(is_stream("message_end"))).event["text"] == "small"
        await client.close()


async def test_a_burst_past_the_rate_limit_gets_rate_limited(data_dir: Path) -> None:
    async with running_stack(data_dir, client_rate=0.01, client_burst=5) as stack:
        client = await connect_client(stack.url, stack.hub)
        sent = [
            await client.send("nobody", "message", {"agentId": "main", "content": "hi"})
            for _ in range(8)
        ]
        codes = [(await client.next_error()) for _ in range(8)]
        by_id = {e.message_id: e.code for e in codes}
        assert [by_id[i] for i in sent[:5]] == ["DEVICE_NOT_FOUND"] * 5
        assert [by_id[i] for i in sent[5:]] == ["RATE_LIMITED"] * 3
        await client.close()


async def test_unknown_target_and_client_to_client_are_refused(data_dir: Path) -> None:
    async with running_stack(data_dir) as stack:
        one = await connect_client(stack.url, stack.hub)
        two = await connect_client(stack.url, stack.hub)
        await one.send("ghost", "message", {"agentId": "main", "content": "hi"})
        assert (await one.next_error()).code == "DEVICE_NOT_FOUND"
        assert two.device_id is not None
        await one.send(two.device_id, "message", {"agentId": "main", "content": "hi"})
        assert (await one.next_error()).code == "UNAUTHORIZED"
        await one.send("hub", "stream", {"agentId": "main", "streamId": "s", "seq": 0, "event": {}})
        assert (await one.next_error()).code == "UNAUTHORIZED"
        await one.close()
        await two.close()


async def test_unauthenticated_sockets_are_refused_or_can_only_pair(data_dir: Path) -> None:
    async with running_stack(data_dir) as stack:
        issued = stack.hub.access.redeem_invite(stack.hub.access.create_invite().code, "x")
        wrong = [
            {"role": "client", "deviceId": issued.device_id, "token": "wrong"},
            {"role": "client", "deviceId": "web-unknown", "token": issued.token},
            {"role": "hub", "deviceId": "hub2", "token": "not-the-gateway-token"},
            {"role": "admin"},
            {"role": "client", "deviceId": "../etc", "token": issued.token},
        ]
        for auth in wrong:
            with pytest.raises(socketio.exceptions.ConnectionError, match="UNAUTHORIZED"):
                await connect_device(stack.url, auth)
        pairing = await connect_device(stack.url, None)
        registered = await pairing.registered.get()
        assert registered["role"] == "pairing"
        assert registered["hubs"] == []  # nothing about the owner's devices leaks
        await pairing.client.emit(
            "send",
            {"id": "p1", "from": "hub", "to": "hub", "action": "message", "payload": {}},
        )
        error = await pairing.next_error()
        assert (error.message_id, error.code) == ("p1", "NOT_REGISTERED")
        await pairing.close()


async def test_a_second_hub_with_the_same_id_is_refused(data_dir: Path) -> None:
    async with running_stack(data_dir) as stack:
        with pytest.raises(socketio.exceptions.ConnectionError, match="DUPLICATE_DEVICE"):
            await connect_device(
                stack.url, {"role": "hub", "deviceId": "hub", "token": GATEWAY_TOKEN}
            )
        assert stack.link.linked


async def test_a_revoked_device_is_disconnected_at_once_and_refused_after(
    data_dir: Path,
) -> None:
    async with running_stack(data_dir) as stack:
        issued = stack.hub.access.redeem_invite(stack.hub.access.create_invite().code, "x")
        auth = {"role": "client", "deviceId": issued.device_id, "token": issued.token}
        client = await connect_device(stack.url, auth)
        gone = asyncio.Event()
        client.client.on("disconnect", lambda *args: gone.set())
        assert stack.hub.access.revoke(issued.device_id)
        async with asyncio.timeout(5):
            await gone.wait()
        with pytest.raises(socketio.exceptions.ConnectionError, match="UNAUTHORIZED"):
            await connect_device(stack.url, auth)


async def test_hubs_hear_device_presence(data_dir: Path) -> None:
    async with running_stack(data_dir) as stack:
        client = await connect_client(stack.url, stack.hub)
        await eventually(lambda: client.device_id in stack.link.clients)
        devices = await stack.gateway.connected_devices()
        assert {(d.device_id, d.role) for d in devices} == {
            ("hub", "hub"),
            (client.device_id, "client"),
        }
        assert stack.gateway.local_devices() == devices
        # Clients hear about hubs only.
        assert client.devices
        seen = {d.device_id for push in client.devices for d in push.devices}
        assert seen == {"hub"}
        await client.close()
        await eventually(lambda: not stack.link.clients)


async def test_a_device_joining_mid_stream_sees_the_gap(data_dir: Path) -> None:
    async with running_stack(
        data_dir, model_factory=lambda: EchoModel(pieces=60, delay=0.03)
    ) as stack:
        writer = await connect_client(stack.url, stack.hub, "laptop")
        await writer.message("a long streaming reply " * 10)
        await writer.next_frame(is_stream("message_update"))
        late = await connect_client(stack.url, stack.hub, "phone")
        first = stream_of(await late.next_frame(lambda f: f["action"] == "stream"))
        assert first.seq > 0  # it missed the beginning: it must refetch history
        await late.next_frame(reply_is("a long streaming reply " * 10))
        await writer.close()
        await late.close()
