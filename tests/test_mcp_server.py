"""`agenthub mcp` as a real stdio subprocess, driven by the `mcp` SDK's client against a
running `agenthub serve`: its tools list agents, message them (the reply streaming as
progress), read history and list sessions; withheld agents, bad input and a stopped hub are
tool errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_types import CallToolResult, TextContent

from tests.cli_process import AGENTHUB, Served, clean_env
from tests.conftest import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = clean_env(tmp_path / "data", AGENTHUB_PORT=str(free_port()))
    served = Served("serve", env)
    try:
        served.wait_for_output(r"control: agenthub ctl status")
        yield env
    finally:
        served.stop()


@asynccontextmanager
async def mcp_session(env: dict[str, str], *args: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=AGENTHUB,
        args=["mcp", *args],
        env={k: v for k, v in env.items() if k.startswith("AGENTHUB_")},
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def text_of(result: CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, TextContent))


def data_of(result: CallToolResult) -> Any:
    assert not result.is_error, text_of(result)
    structured = result.structured_content
    return structured.get("result", structured) if isinstance(structured, dict) else structured


async def test_tools_list_message_and_read_back(env: dict[str, str]) -> None:
    async with mcp_session(env) as mcp:
        tools = {t.name for t in (await mcp.list_tools()).tools}
        assert tools == {"list_agents", "send_message", "read_history", "list_sessions", "inbox"}

        agents = data_of(await mcp.call_tool("list_agents", {}))
        assert [a["agent_id"] for a in agents] == ["main"]

        streamed: list[str] = []

        async def progress(progress: float, total: float | None, message: str | None) -> None:
            streamed.append(message or "")

        reply = data_of(
            await mcp.call_tool(
                "send_message",
                {"agent": "main", "text": "hello from a host"},
                progress_callback=progress,
            )
        )
        assert reply["reply"] == "hello from a host" and reply["status"] == "completed"
        assert reply["session"] == "mcp"
        assert len(streamed) > 1 and "".join(streamed) == "hello from a host"

        history = data_of(await mcp.call_tool("read_history", {"agent": "main", "session": "mcp"}))
        assert [(h["role"], h["text"]) for h in history] == [
            ("user", "hello from a host"),
            ("assistant", "hello from a host"),
        ]
        main = data_of(await mcp.call_tool("read_history", {"agent": "main", "session": "main"}))
        assert main == []
        assert data_of(await mcp.call_tool("inbox", {"agent": "main"})) == []


async def test_list_sessions_names_the_hosts_session(env: dict[str, str]) -> None:
    async with mcp_session(env) as mcp:
        await mcp.call_tool("send_message", {"agent": "main", "text": "x", "session": "notes"})
        listed = await mcp.call_tool("list_sessions", {"agent": "main"})
        assert not listed.is_error, text_of(listed)
        assert "notes" in json.dumps(listed.structured_content)


async def test_bad_input_and_withheld_agents_are_clear_tool_errors(env: dict[str, str]) -> None:
    async with mcp_session(env, "--agent", "main") as mcp:
        cases: list[tuple[str, dict[str, Any], str]] = [
            ("send_message", {"agent": "nobody", "text": "x"}, "not available to this MCP"),
            ("read_history", {"agent": "nobody"}, "not available to this MCP"),
            ("inbox", {"agent": "nobody"}, "not available to this MCP"),
            ("inbox", {"agent": "main", "limit": 0}, "limit"),
            ("send_message", {"agent": "main", "text": "   "}, "empty"),
            ("send_message", {"agent": "main", "text": "x", "session": "a b"}, "session key"),
            ("send_message", {"agent": "main"}, "text"),
            ("read_history", {"agent": "main", "limit": 0}, "limit"),
        ]
        for tool, arguments, expected in cases:
            result = await mcp.call_tool(tool, arguments)
            assert result.is_error, (tool, arguments)
            assert expected in text_of(result), (tool, arguments, text_of(result))
    async with mcp_session(env) as unrestricted:
        result = await unrestricted.call_tool("send_message", {"agent": "nobody", "text": "x"})
        assert result.is_error and "no agent 'nobody'" in text_of(result)


async def test_without_a_running_hub_tools_say_how_to_start_one(tmp_path: Path) -> None:
    env = clean_env(tmp_path / "empty")
    async with mcp_session(env) as mcp:
        result = await asyncio.wait_for(mcp.call_tool("list_agents", {}), 60)
    assert result.is_error and "agenthub serve" in text_of(result)
