"""Shared parts of the gateway tests (imported by test_gateway_*.py and test_web_*.py; it holds
no tests itself): a running gateway + hub + hub link, and a recording python-socketio device."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import socketio
from pydantic import JsonValue, SecretStr

from gateway.config import GatewayConfig
from gateway.hub_link import HubLink
from gateway.protocol import Devices, ResponsePayload, SendError, StreamPayload
from gateway.server import GatewayServer
from hub.approvals import Approvals
from hub.echo import EchoModel
from hub.errors import ModelError
from hub.hub import Hub
from hub.model import (
    Model,
    ModelPart,
    ModelTurn,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
)
from hub.requests.agents import HistoryAnswer
from hub.scopes import ConversationConfig
from hub.service import attach_probes
from hub.sessions import MessageEntry

GATEWAY_TOKEN = "test-gateway-token-0123456789abcdef"
# A guard against hangs, not a timing assertion: generous, so a loaded machine (a fresh
# subprocess hub answering its first message) never trips it.
WAIT_SECONDS = 30.0


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait until `condition()` holds (state owned by another task), failing after a while."""
    async with asyncio.timeout(WAIT_SECONDS):
        while not condition():  # noqa: ASYNC110 - polls state that has no event to wait on
            await asyncio.sleep(0.01)


@dataclass
class Stack:
    gateway: GatewayServer
    hub: Hub
    link: HubLink

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway.port}"


@contextlib.asynccontextmanager
async def running_stack(
    data_dir: Path,
    *,
    model_factory: Callable[[], Model] = lambda: EchoModel(pieces=4, delay=0.0),
    agent_ids: tuple[str, ...] = ("main",),
    port: int = 0,
    approvals: Approvals | None = None,
    conversations: ConversationConfig | None = None,
    **config: Any,
) -> AsyncIterator[Stack]:
    """Hub + gateway + hub link, in this process, on a free loopback port. `approvals`: the
    object the models' `ask` tools wait on (the hub's, so requests decide them)."""
    hub = Hub(
        data_dir,
        model_factory,
        agent_ids=agent_ids,
        approvals=approvals,
        conversations=conversations,
    )
    gateway = GatewayServer(
        GatewayConfig(port=port, gateway_token=SecretStr(GATEWAY_TOKEN), **config),
        hub.access,
        hub.health,
    )
    await gateway.start()
    link = HubLink(hub, f"http://127.0.0.1:{gateway.port}", GATEWAY_TOKEN, backoff_max=0.5)
    await link.start()
    for service in (gateway, link):
        attach_probes(hub.health, service)
    stack = Stack(gateway, hub, link)
    try:
        async with asyncio.timeout(10):
            await link.wait_linked()
        yield stack
    finally:
        await link.stop()
        await stack.gateway.stop()  # a test may have replaced (restarted) the gateway
        await hub.close()


@dataclass
class Device:
    """A python-socketio client that records what the gateway sends it."""

    client: socketio.AsyncClient
    device_id: str | None = None
    received: asyncio.Queue[dict[str, JsonValue]] = field(default_factory=asyncio.Queue)
    errors: asyncio.Queue[SendError] = field(default_factory=asyncio.Queue)
    devices: list[Devices] = field(default_factory=list)
    registered: asyncio.Queue[dict[str, JsonValue]] = field(default_factory=asyncio.Queue)
    events: list[str] = field(default_factory=list)
    counter: int = 0

    async def send(
        self, to: str, action: str, payload: JsonValue, *, sender: str | None = None
    ) -> str:
        self.counter += 1
        frame_id = f"{self.device_id}-{self.counter}"
        await self.client.emit(
            "send",
            {
                "id": frame_id,
                "from": sender or self.device_id,
                "to": to,
                "action": action,
                "payload": payload,
            },
        )
        return frame_id

    async def message(self, text: str, agent_id: str = "main", to: str = "hub") -> str:
        return await self.send(to, "message", {"agentId": agent_id, "content": text})

    async def request(
        self, method: str, params: dict[str, JsonValue], to: str = "hub"
    ) -> ResponsePayload:
        self.counter += 1
        request_id = f"q-{self.counter}"
        await self.send(
            to, "request", {"requestId": request_id, "method": method, "params": params}
        )
        frame = await self.next_frame(
            lambda f: (
                f["action"] == "response"
                and isinstance(f["payload"], dict)
                and f["payload"].get("requestId") == request_id
            )
        )
        return ResponsePayload.model_validate(frame["payload"])

    async def history(self, agent_id: str = "main") -> HistoryAnswer:
        response = await self.request("history", {"agentId": agent_id, "limit": 100})
        assert response.ok, response.error
        return HistoryAnswer.model_validate(response.payload)

    async def next_frame(
        self, match: Callable[[dict[str, JsonValue]], bool]
    ) -> dict[str, JsonValue]:
        """The next received frame matching `match` (frames before it are discarded)."""
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                frame = await self.received.get()
                if match(frame):
                    return frame

    async def next_error(self) -> SendError:
        async with asyncio.timeout(WAIT_SECONDS):
            return await self.errors.get()

    async def close(self) -> None:
        await self.client.disconnect()


async def connect_device(url: str, auth: dict[str, str] | None, **client_options: Any) -> Device:
    client = socketio.AsyncClient(reconnection=False, **client_options)
    device = Device(client, device_id=(auth or {}).get("deviceId"))

    def any_event(event: str, data: JsonValue = None) -> None:
        device.events.append(event)

    client.on("receive", device.received.put_nowait)
    client.on("send_error", lambda data: device.errors.put_nowait(SendError.model_validate(data)))
    client.on("registered", device.registered.put_nowait)
    client.on("devices", lambda data: device.devices.append(Devices.model_validate(data)))
    client.on("*", any_event)

    refusal: list[JsonValue] = []
    client.on("connect_error", refusal.append)
    try:
        await client.connect(url, auth=auth, transports=["websocket"], wait_timeout=5)
    except socketio.exceptions.ConnectionError as exc:
        raise socketio.exceptions.ConnectionError(f"{exc}: {refusal}") from exc
    return device


async def connect_client(stack_url: str, hub: Hub, label: str = "test") -> Device:
    """Pair a client device with an invite (through the AccessStore) and connect it."""
    issued = hub.access.redeem_invite(hub.access.create_invite().code, label)
    return await connect_device(
        stack_url, {"role": "client", "deviceId": issued.device_id, "token": issued.token}
    )


def stream_of(frame: dict[str, JsonValue]) -> StreamPayload:
    return StreamPayload.model_validate(frame["payload"])


def is_stream(event_type: str) -> Callable[[dict[str, JsonValue]], bool]:
    def match(frame: dict[str, JsonValue]) -> bool:
        payload = frame["payload"]
        return (
            frame["action"] == "stream"
            and isinstance(payload, dict)
            and isinstance(payload["event"], dict)
            and payload["event"].get("type") == event_type
        )

    return match


def reply_is(text: str) -> Callable[[dict[str, JsonValue]], bool]:
    """Matches the stream frame of an assistant message_end with exactly `text`."""
    is_end = is_stream("message_end")

    def match(frame: dict[str, JsonValue]) -> bool:
        return is_end(frame) and stream_of(frame).event.get("text") == text

    return match


def assistant_texts(history: HistoryAnswer) -> list[str]:
    return [
        e.text for e in history.entries if isinstance(e, MessageEntry) and e.role == "assistant"
    ]


class ToolModel:
    """Says it will look something up, runs a tool (failing when asked to), then answers."""

    def __init__(self, *, delay: float = 0.0, fail_tool: bool = False) -> None:
        self.delay = delay
        self.fail_tool = fail_tool

    @property
    def name(self) -> str:
        return "test-tools"

    async def stream(self, turn: ModelTurn) -> AsyncGenerator[ModelPart, None]:
        yield TextDelta("Let me check. ")
        await asyncio.sleep(self.delay)
        args: JsonValue = {"query": turn.text}
        yield ToolCallStarted("call-1", "lookup", args)
        await asyncio.sleep(self.delay)
        if self.fail_tool:
            yield ToolCallFinished("call-1", "lookup", args, "lookup service down", True)
        else:
            yield ToolCallFinished("call-1", "lookup", args, {"answer": 42}, False)
        yield TextDelta("The answer is **42**.")


class FailingModel:
    """Streams a little, then fails the way a provider does."""

    @property
    def name(self) -> str:
        return "test-failing"

    async def stream(self, turn: ModelTurn) -> AsyncGenerator[ModelPart, None]:
        yield TextDelta("Starting…")
        await asyncio.sleep(0)
        raise ModelError("auth", "the provider rejected the API key; set OPENAI_API_KEY")


class ScriptedModel:
    """Replies with a fixed text, in `pieces` deltas `delay` seconds apart."""

    def __init__(self, reply: str, *, pieces: int = 3, delay: float = 0.0) -> None:
        self.reply = reply
        self.pieces = pieces
        self.delay = delay

    @property
    def name(self) -> str:
        return "test-scripted"

    async def stream(self, turn: ModelTurn) -> AsyncGenerator[ModelPart, None]:
        size = max(1, -(-len(self.reply) // self.pieces))
        for start in range(0, len(self.reply), size):
            await asyncio.sleep(self.delay)
            yield TextDelta(self.reply[start : start + size])


@contextlib.asynccontextmanager
async def raw_socket(url: str, auth: dict[str, str] | None = None) -> AsyncIterator[RawSocket]:
    """A websocket speaking Engine.IO by hand: for packets no Socket.IO client would send.
    `auth` None opens the transport only; a dict also connects the namespace with it."""
    ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url) as ws:
        raw = RawSocket(ws)
        opened = await raw.next_text()
        assert opened.startswith("0"), opened
        if auth is not None:
            await ws.send_str("40" + json.dumps(auth))
            connected = await raw.next_text()
            assert connected.startswith(("40", "44")), connected
        yield raw


@dataclass
class RawSocket:
    ws: aiohttp.ClientWebSocketResponse

    async def send(self, packet: str | bytes) -> None:
        if isinstance(packet, bytes):
            await self.ws.send_bytes(packet)
        else:
            await self.ws.send_str(packet)

    async def next_text(self) -> str:
        """The next text packet, answering pings on the way; "" once the socket closed."""
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                message = await self.ws.receive()
                if message.type != aiohttp.WSMsgType.TEXT:
                    return ""
                if message.data == "2":
                    await self.ws.send_str("3")
                    continue
                return str(message.data)
