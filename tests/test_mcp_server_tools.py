"""The MCP tools' shared layer (`hub.mcp_tools`) and what is under it: a refusal from the hub
(a session or an inbox the caller may not see) is a tool error with the hub's words, a torn
inbox line is skipped, and the gateway's ASGI bridge ends a stream when its client goes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from mcp import Client
from mcp.server.mcpserver import Context
from pydantic import JsonValue

from gateway.asgi_bridge import Message, Receive, Send, serve_asgi
from hub.agent_mail import MailMessage, inbox_path
from hub.echo import EchoModel
from hub.errors import CodedError
from hub.hub import Hub
from hub.mcp_tools import HubPort, TextSink, build_server
from hub.requests import Caller, RequestHost, dispatch
from hub.requests.mail import InboxAnswer
from hub.requests.messages import SendAnswer
from tests.conftest import free_port
from tests.test_mcp_server import text_of

OWNER = Caller(surface="control", owner=True)
GUEST = Caller(surface="web", device_id="web-guest", owner=False)


class TablePort:
    """The request table in this process, as `caller`; the reply streams in pieces."""

    def __init__(self, hub: Hub, caller: Caller) -> None:
        self.host = RequestHost(access=hub.access, health=hub.health, hub=hub)
        self.caller = caller

    async def ask(self, method: str, params: dict[str, JsonValue], *, seconds: float) -> JsonValue:
        answer = await dispatch(self.host, self.caller, method, params)
        return answer.model_dump(mode="json")

    async def send(
        self, params: dict[str, JsonValue], on_text: TextSink, *, seconds: float
    ) -> SendAnswer:
        answer = SendAnswer.model_validate(await self.ask("messages.send", params, seconds=1))
        for start in range(0, len(answer.reply), 3):
            await on_text(answer.reply[start : start + 3])
        return answer


@pytest.fixture
async def hub(data_dir: Path) -> AsyncIterator[Hub]:
    hub = Hub(data_dir, lambda: EchoModel(pieces=3, delay=0.0))
    yield hub
    await hub.close()


@asynccontextmanager
async def connected(hub: Hub, caller: Caller) -> AsyncIterator[Client]:
    port = TablePort(hub, caller)

    @asynccontextmanager
    async def open_port(ctx: Context) -> AsyncIterator[HubPort]:
        yield port

    async with Client(build_server(open_port)) as client:
        yield client


async def test_what_the_hub_refuses_is_a_tool_error_in_its_words(hub: Hub) -> None:
    async with connected(hub, OWNER) as owner:
        written = await owner.call_tool("send_message", {"agent": "main", "text": "private"})
        assert not written.is_error, text_of(written)
    async with connected(hub, GUEST) as guest:
        history = await guest.call_tool("read_history", {"agent": "main", "session": "mcp"})
        assert history.is_error and "not yours to see" in text_of(history), text_of(history)
        inbox = await guest.call_tool("inbox", {"agent": "main"})
        assert inbox.is_error and "owner only" in text_of(inbox)


async def test_the_reply_streams_as_progress(hub: Hub) -> None:
    seen: list[str] = []

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")

    async with connected(hub, OWNER) as owner:
        result = await owner.call_tool(
            "send_message",
            {"agent": "main", "text": "seven words in a streamed reply"},
            progress_callback=progress,
        )
    assert not result.is_error, text_of(result)
    assert "".join(seen) == "seven words in a streamed reply" and len(seen) > 1


async def test_the_inbox_request_reads_the_file_and_skips_a_torn_line(hub: Hub) -> None:
    path = inbox_path(hub.data_dir, "main")
    path.parent.mkdir(parents=True)
    message = MailMessage(id="m1", sender="helper", recipient="main", text="hi", sent_at=1.0)
    path.write_text(message.model_dump_json() + '\n{"type": "mess')
    answer = await dispatch(
        RequestHost(access=hub.access, health=hub.health, hub=hub),
        OWNER,
        "mail.inbox",
        {"agentId": "main"},
    )
    assert isinstance(answer, InboxAnswer)
    assert [(m.id, m.sender, m.read) for m in answer.messages] == [("m1", "helper", False)]
    with pytest.raises(CodedError) as unknown:
        await dispatch(
            RequestHost(access=hub.access, health=hub.health, hub=hub),
            OWNER,
            "mail.inbox",
            {"agentId": "nobody"},
        )
    assert unknown.value.code == "unknown_agent"


async def test_the_bridge_says_disconnect_once_the_client_is_gone() -> None:
    told: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def streaming(scope: object, receive: Receive, send: Send) -> None:
        body: Message = await receive()
        assert body["type"] == "http.request"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
        told.set_result((await receive())["type"])

    async def handler(request: web.Request) -> web.StreamResponse:
        return await serve_asgi(streaming, request)

    app = web.Application()
    app.router.add_get("/", handler)
    # As the gateway runs it: a client that goes away does not cancel the handler.
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as client:
            response = await client.get(f"http://127.0.0.1:{port}/")
            assert await response.content.readline() == b"first\n"
            response.close()
            assert await asyncio.wait_for(told, 30) == "http.disconnect"
    finally:
        await runner.cleanup()
