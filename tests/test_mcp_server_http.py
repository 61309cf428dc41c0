"""The gateway's `/mcp` endpoint end to end: the `mcp` SDK's streamable-HTTP client against a
running `agenthub serve` (and `agenthub gateway` + `agenthub hub` as two processes), with a
device token from `agenthub ctl tokens new`: the tools list agents, stream a reply as
progress notifications, read history, sessions and the inbox; no, a wrong or a revoked token
is a 401."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from hub.agent_mail import MailMessage, ReadMark
from tests.cli_process import Served, clean_env, run_cli, split_processes
from tests.conftest import free_port
from tests.test_mcp_server import data_of, text_of
from tests.test_openai_api_serve import new_token

pytestmark = pytest.mark.slow

TOKEN = "mcp-split-test-gateway-token-7d1e"


@asynccontextmanager
async def mcp_http(url: str, token: str) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def write_inbox(data_dir: Path) -> None:
    """Two messages to `main` from `helper`, the first read, and a torn last line."""
    mail = data_dir / "mail"
    mail.mkdir(parents=True)
    records: list[MailMessage | ReadMark] = [
        MailMessage(id="m1", sender="helper", recipient="main", text="old", sent_at=1.0),
        MailMessage(id="m2", sender="helper", recipient="main", text="new", sent_at=2.0),
        ReadMark(ids=["m1"]),
    ]
    lines = "".join(r.model_dump_json() + "\n" for r in records)
    (mail / "main.jsonl").write_text(lines + '{"type": "message", "id": "m3", "sen')


async def post_status(url: str, headers: dict[str, str]) -> int:
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    async with httpx2.AsyncClient() as http:
        response = await http.post(f"{url}/mcp", json=body, headers=headers)
    return response.status_code


async def test_tools_over_http_with_a_device_token(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    write_inbox(data_dir)
    env = clean_env(data_dir, AGENTHUB_PORT=str(port))
    served = Served("serve", env)
    url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(served.wait_for_output, r"control: agenthub ctl status")
        device_id, token = await asyncio.to_thread(new_token, env, "an mcp host")
        async with mcp_http(url, token) as mcp:
            tools = {t.name for t in (await mcp.list_tools()).tools}
            assert tools == {
                "list_agents",
                "send_message",
                "read_history",
                "list_sessions",
                "inbox",
            }
            agents = data_of(await mcp.call_tool("list_agents", {}))
            assert [a["agent_id"] for a in agents] == ["main"]

            streamed: list[str] = []

            async def progress(progress: float, total: float | None, message: str | None) -> None:
                streamed.append(message or "")

            text = "a reply that grows piece by piece"
            result = await mcp.call_tool(
                "send_message", {"agent": "main", "text": text}, progress_callback=progress
            )
            reply = data_of(result)
            assert reply["reply"] == text and reply["status"] == "completed"
            assert reply["session"] == "mcp"
            assert len(streamed) > 1 and "".join(streamed) == text

            history = data_of(await mcp.call_tool("read_history", {"agent": "main"}))
            lines = [(h["role"], h["text"]) for h in history]
            assert lines == [("user", text), ("assistant", text)]
            sessions = await mcp.call_tool("list_sessions", {"agent": "main"})
            assert not sessions.is_error and '"mcp"' in json.dumps(sessions.structured_content)

            unread = data_of(await mcp.call_tool("inbox", {"agent": "main"}))
            assert [(m["id"], m["text"], m["read"]) for m in unread] == [("m2", "new", False)]
            every = data_of(await mcp.call_tool("inbox", {"agent": "main", "unread_only": False}))
            assert [m["id"] for m in every] == ["m1", "m2"]

            for tool, arguments, expected in [
                ("send_message", {"agent": "nobody", "text": "x"}, "no agent 'nobody'"),
                ("inbox", {"agent": "nobody"}, "no agent 'nobody'"),
                ("send_message", {"agent": "main", "text": "x", "session": "a b"}, "session"),
            ]:
                refused = await mcp.call_tool(tool, arguments)
                assert refused.is_error and expected in text_of(refused), text_of(refused)

        assert await post_status(url, {}) == 401
        assert await post_status(url, {"Authorization": "Bearer not-a-token"}) == 401
        revoked = await asyncio.to_thread(run_cli, "ctl", "tokens", "revoke", device_id, env=env)
        assert revoked.returncode == 0, revoked.stderr
        assert await post_status(url, {"Authorization": f"Bearer {token}"}) == 401
        assert token not in served.logs()
    finally:
        served.stop()


async def test_mcp_over_http_through_a_separate_gateway_process(tmp_path: Path) -> None:
    async with split_processes(tmp_path, TOKEN) as split:
        _, token = await asyncio.to_thread(new_token, split.gateway_env, "split host")
        async with mcp_http(split.url, token) as mcp:
            reply: dict[str, Any] = data_of(
                await mcp.call_tool("send_message", {"agent": "main", "text": "two processes"})
            )
            assert reply["reply"] == "two processes"
            unread = data_of(await mcp.call_tool("inbox", {"agent": "main"}))
            assert unread == []
