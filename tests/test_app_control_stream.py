"""A streaming request over the control socket: the events of the run `messages.send` waits
for come first, a line each, then its response; `agenthub mcp`'s port turns them into the
reply as it grows. A client gone mid-run, a hub gone mid-answer and no hub at all."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

import pytest

from app.control_handlers import ProcessContext, process_methods
from app.control_protocol import CtlEvent, CtlResponse
from app.control_server import ControlServer
from app.mcp_server import ControlPort
from hub.echo import EchoModel
from hub.errors import CodedError
from hub.hub import Hub
from hub.model import ModelPart, ModelTurn
from hub.requests import RequestHost
from hub.run_watch import ReplyText
from hub.sessions import MessageEntry


class HeldEcho(EchoModel):
    """Echoes in pieces, holding the rest of the reply after the first piece until released."""

    def __init__(self) -> None:
        super().__init__(pieces=4)
        self.release = asyncio.Event()

    async def stream(self, turn: ModelTurn) -> AsyncGenerator[ModelPart, None]:
        first = True
        async for part in super().stream(turn):
            yield part
            if first:
                first = False
                await self.release.wait()


@pytest.fixture
async def served(data_dir: Path) -> AsyncIterator[tuple[Hub, ControlServer, HeldEcho]]:
    model = HeldEcho()
    model.release.set()
    hub = Hub(data_dir, lambda: model)
    host = RequestHost(access=hub.access, health=hub.health, hub=hub)
    process = process_methods(ProcessContext(mode="serve", request_shutdown=lambda: None))
    server = ControlServer(data_dir / "ctl.sock", host, process)
    await server.start()
    yield hub, server, model
    await server.stop()
    await hub.close()


async def lines_of(server: ControlServer, request: dict[str, object]) -> list[dict[str, object]]:
    """Every line the server sends for `request`, up to and including its response."""
    reader, writer = await asyncio.open_unix_connection(str(server.path))
    writer.write(json.dumps(request).encode() + b"\n")
    lines: list[dict[str, object]] = []
    while not lines or "ok" not in lines[-1]:
        lines.append(json.loads(await reader.readline()))
    writer.close()
    return lines


def send(text: str, **more: object) -> dict[str, object]:
    params = {"agentId": "main", "content": text, "sessionKey": "tools"}
    return {"id": "7", "method": "messages.send", "params": params, **more}


async def test_a_streaming_send_gets_its_runs_events_then_the_answer(
    served: tuple[Hub, ControlServer, HeldEcho],
) -> None:
    _, server, _ = served
    text = "a reply that grows piece by piece"
    lines = await lines_of(server, send(text, stream=True))
    events = [CtlEvent.model_validate(line) for line in lines[:-1]]
    answer = CtlResponse.model_validate(lines[-1])
    assert answer.ok and answer.id == "7" and isinstance(answer.result, dict)
    run_id = answer.result["runId"]
    assert {e.id for e in events} == {"7"}
    assert {e.event["runId"] for e in events} == {run_id}
    kinds = [e.event["type"] for e in events]
    assert kinds[0] == "agent_start" and kinds[-1] == "agent_end"
    assert kinds.count("message_update") > 1  # the reply came in pieces
    seqs = [int(str(e.event["seq"])) for e in events]
    assert seqs == sorted(seqs)
    reply = ReplyText()
    grown = [reply.take(e.event) for e in events]
    assert "".join(grown) == text == answer.result["reply"]


async def test_without_stream_or_without_a_run_there_is_only_the_answer(
    served: tuple[Hub, ControlServer, HeldEcho],
) -> None:
    _, server, _ = served
    assert len(await lines_of(server, send("plain"))) == 1
    assert len(await lines_of(server, send("queued", stream=True, wait=False))) == 1
    listed = await lines_of(server, {"id": "1", "method": "agents.list", "stream": True})
    assert len(listed) == 1 and listed[0]["ok"] is True


async def test_a_client_gone_mid_run_leaves_the_run_and_the_socket_well(
    served: tuple[Hub, ControlServer, HeldEcho], caplog: pytest.LogCaptureFixture
) -> None:
    hub, server, model = served
    model.release.clear()
    reader, writer = await asyncio.open_unix_connection(str(server.path))
    writer.write(json.dumps(send("left behind", stream=True)).encode() + b"\n")
    first = json.loads(await reader.readline())
    assert first["event"]["type"] == "agent_start"
    writer.close()
    await writer.wait_closed()
    model.release.set()
    await hub.default_agent.wait_idle()
    last = hub.default_agent.history(session_key="tools")[-1]
    assert isinstance(last, MessageEntry) and last.text == "left behind"
    again = await lines_of(server, send("still here", stream=True))
    assert again[-1]["ok"] is True
    assert "Traceback" not in caplog.text


async def test_the_mcp_port_grows_the_reply_from_the_stream(
    served: tuple[Hub, ControlServer, HeldEcho],
) -> None:
    _, server, _ = served
    grown: list[str] = []

    async def on_text(delta: str) -> None:
        grown.append(delta)

    params: dict[str, object] = {"agentId": "main", "content": "grow me please", "sessionKey": "m"}
    answer = await ControlPort(server.path).send(
        json.loads(json.dumps(params)), on_text, seconds=30
    )
    assert answer.status == "completed" and answer.reply == "grow me please"
    assert len(grown) > 1 and "".join(grown) == answer.reply

    refused = {"agentId": "nobody", "content": "x"}
    with pytest.raises(CodedError, match="no agent 'nobody'"):
        await ControlPort(server.path).send(json.loads(json.dumps(refused)), on_text, seconds=30)


async def test_the_mcp_port_names_a_missing_or_failing_hub(tmp_path: Path) -> None:
    async def on_text(delta: str) -> None:
        raise AssertionError(delta)

    params = json.loads(json.dumps({"agentId": "main", "content": "x"}))
    with pytest.raises(CodedError, match="agenthub serve") as missing:
        await ControlPort(tmp_path / "ctl.sock").send(params, on_text, seconds=5)
    assert missing.value.code == "unavailable"

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.close()

    async def mumble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"not json\n")
        await writer.drain()
        writer.close()

    for handler, expected in ((hang_up, "closed the connection"), (mumble, "did not answer")):
        path = tmp_path / f"{handler.__name__}.sock"
        fake = await asyncio.start_unix_server(handler, path=path)
        try:
            with pytest.raises(CodedError, match=expected) as failed:
                await ControlPort(path).send(params, on_text, seconds=5)
            assert failed.value.code == "unavailable"
        finally:
            fake.close()
            await fake.wait_closed()
