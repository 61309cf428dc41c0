"""No lost replies: the gateway stops and restarts mid-stream; the client, following the
documented rules (resync history after every connect and on a seq gap, keyed by message id),
ends with the complete final text exactly once."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import JsonValue, SecretStr

from gateway.config import GatewayConfig
from gateway.server import GatewayServer
from hub.echo import EchoModel
from hub.sessions import MessageEntry
from tests.test_gateway_support import (
    GATEWAY_TOKEN,
    Device,
    connect_device,
    running_stack,
    stream_of,
)


@dataclass
class Transcript:
    """What a client shows: assistant messages by id, in order, each once."""

    messages: dict[str, str] = field(default_factory=dict)
    final: set[str] = field(default_factory=set)
    expected_seq: dict[str, int] = field(default_factory=dict)
    resyncs: int = 0
    ended_runs: set[str] = field(default_factory=set)

    async def resync(self, device: Device) -> None:
        self.resyncs += 1
        history = await device.history()
        for entry in history.entries:
            if isinstance(entry, MessageEntry) and entry.role == "assistant":
                self.messages[entry.id] = entry.text
                self.final.add(entry.id)
                self.ended_runs.add(entry.run_id)

    async def apply(self, device: Device, frame: dict[str, JsonValue]) -> None:
        payload = stream_of(frame)
        expected = self.expected_seq.get(payload.stream_id, payload.seq)
        self.expected_seq[payload.stream_id] = payload.seq + 1
        event = payload.event
        if event["type"] in ("message_update", "message_end"):
            message_id = str(event["messageId"])
            if message_id not in self.final:
                self.messages[message_id] = str(event["text"])
            if event["type"] == "message_end":
                self.final.add(message_id)
        if event["type"] == "agent_end":
            self.ended_runs.add(str(event["runId"]))
        if payload.seq != expected:
            await self.resync(device)


@pytest.mark.parametrize("run_ends_while_down", [False, True])
async def test_gateway_restart_mid_stream_loses_nothing_and_duplicates_nothing(
    data_dir: Path, run_ends_while_down: bool
) -> None:
    text = " ".join(f"token{i}" for i in range(40))
    async with running_stack(
        data_dir, model_factory=lambda: EchoModel(pieces=40, delay=0.03)
    ) as stack:
        port = stack.gateway.port
        issued = stack.hub.access.redeem_invite(stack.hub.access.create_invite().code, "x")
        auth = {"role": "client", "deviceId": issued.device_id, "token": issued.token}
        client = await connect_device(stack.url, auth)
        transcript = Transcript()
        await transcript.resync(client)
        frame_id = await client.message(text)
        accepted = await client.next_frame(lambda f: f["action"] == "response")
        assert accepted["payload"]["requestId"] == frame_id  # type: ignore[index, call-overload]
        run_id = str(accepted["payload"]["payload"]["runId"])  # type: ignore[index, call-overload]
        while not transcript.messages:
            await transcript.apply(
                client, await client.next_frame(lambda f: f["action"] == "stream")
            )
        assert "going_away" not in client.events

        await stack.gateway.stop()
        assert "going_away" in client.events
        if run_ends_while_down:
            await stack.hub.default_agent.wait_idle()
        stack.gateway = GatewayServer(
            GatewayConfig(port=port, gateway_token=SecretStr(GATEWAY_TOKEN)),
            stack.hub.access,
            stack.hub.health,
        )
        await stack.gateway.start()
        async with asyncio.timeout(10):
            await stack.link.wait_linked()
        client = await connect_device(stack.url, auth)
        await transcript.resync(client)
        async with asyncio.timeout(15):
            while run_id not in transcript.ended_runs:
                await transcript.apply(
                    client, await client.next_frame(lambda f: f["action"] == "stream")
                )
        assert list(transcript.messages.values()) == [text]
        assert len(transcript.final) == 1
        history = await client.history()
        assert [e.text for e in history.entries if isinstance(e, MessageEntry)] == [text, text]
        await client.close()
