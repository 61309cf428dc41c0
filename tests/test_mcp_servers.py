"""MCP servers as real subprocesses (stdio) and over streamable HTTP, written with the `mcp`
SDK (tests/mcp_servers/toolbox.py), used by the agent through pydantic-ai's MCP toolsets:
tools, policies, failures, restarts, bounds."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.agent import AsyncAgent
from hub.approvals import Approvals
from hub.events import AgentEvent, ApprovalRequest, ToolExecutionEnd, ToolExecutionStart
from hub.providers import ModelConfig, build_model
from hub.sessions import SessionStore
from hub.tools.config import McpServerConfig, ToolsConfig
from hub.tools.mcp import McpServer, McpServers
from tests.agent_turns import only, run_turn
from tests.conftest import free_port
from tests.fake_openai import FakeOpenAI, Reply, ToolCall

ROOT = Path(__file__).resolve().parents[1]


def toolbox(
    name: str = "toolbox", mode: str = "stdio", *flags: str, **extra: object
) -> McpServerConfig:
    return McpServerConfig.model_validate(
        {
            "name": name,
            "command": sys.executable,
            "args": ["-m", "tests.mcp_servers.toolbox", mode, *flags],
            "cwd": ROOT,
            **extra,
        }
    )


@dataclass
class Rig:
    agent: AsyncAgent
    mcp: McpServers
    fake: FakeOpenAI
    approvals: Approvals

    @property
    def server(self) -> McpServer:
        return self.mcp.servers[0]

    async def call(self, tool: str, args: dict[str, object]) -> list[AgentEvent]:
        """One turn in which the model calls `tool` (its model-facing name) once."""
        self.fake.enqueue(
            Reply(chunks=(), tool_calls=(ToolCall(tool, json.dumps(args)),)),
            Reply(chunks=("done",)),
        )
        return await run_turn(self.agent, f"call {tool}")


@asynccontextmanager
async def rig(
    data_dir: Path, servers: Sequence[McpServerConfig], **tooling: object
) -> AsyncIterator[Rig]:
    config = ToolsConfig.model_validate(
        {
            "mcp_servers": list(servers),
            "mcp_log_dir": data_dir / "logs",
            "mcp_start_timeout": 10,
            "mcp_restart_backoff": 0.1,
            "tool_policies": {"toolbox.*": "allow"},
            **tooling,
        }
    )
    mcp = McpServers(config)
    approvals = Approvals()
    async with FakeOpenAI() as fake:
        model_config = ModelConfig(
            spec="openai:gpt-test", openai_base_url=fake.base_url, tooling=config
        )
        model = build_model(model_config, approvals=approvals, mcp_servers=mcp)
        agent = AsyncAgent("main", model, SessionStore(data_dir))
        await mcp.start()
        try:
            yield Rig(agent, mcp, fake, approvals)
        finally:
            await agent.close()
            await mcp.stop()


def tool_names(fake: FakeOpenAI, request: int) -> set[str]:
    """The tool names the model was offered in that request."""
    return fake.requests[request].tool_names


def ok(server: McpServer) -> bool:
    return server.state == "ok"


def down(server: McpServer) -> bool:
    return server.state == "down"


async def test_stdio_tools_are_offered_namespaced_and_run(data_dir: Path) -> None:
    async with rig(data_dir, [toolbox()]) as r:
        await r.server.wait_until(ok)
        assert r.server.health().status == "ok"
        events = await r.call("toolbox_add", {"a": 2, "b": 40})
        start, end = only(events, ToolExecutionStart), only(events, ToolExecutionEnd)
        assert (start.tool_name, start.args) == ("toolbox.add", {"a": 2, "b": 40})
        assert (end.tool_name, end.result, end.is_error) == ("toolbox.add", 42, False)
        offered = tool_names(r.fake, 0)
        assert {"toolbox_echo", "toolbox_add", "toolbox_hang"} <= offered
        # The server wrote to stderr at start; it went to its log, not the hub's output.
        assert "toolbox: serving on stdio" in r.server.stderr_tail()


async def test_mcp_tools_ask_by_default(data_dir: Path) -> None:
    async with rig(data_dir, [toolbox()], tool_policies={"toolbox.env": "deny"}) as r:
        await r.server.wait_until(ok)
        asked: list[ApprovalRequest] = []

        def on_event(event: AgentEvent) -> None:
            if isinstance(event, ApprovalRequest):
                asked.append(event)
                r.approvals.decide(event.approval_id, "deny", "ctl")

        r.agent.subscribe(on_event)
        events = await r.call("toolbox_echo", {"text": "hi"})
        assert [(a.tool, a.args) for a in asked] == [("toolbox.echo", {"text": "hi"})]
        assert "toolbox.echo was not run: denied by ctl" in str(
            only(events, ToolExecutionEnd).result
        )
        offered = tool_names(r.fake, 0)
        assert "toolbox_env" not in offered and "toolbox_echo" in offered


async def test_server_env_is_its_own_not_the_hubs(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-hub-secret")
    async with rig(data_dir, [toolbox(env={"GREETING": "hello"})]) as r:
        await r.server.wait_until(ok)
        greeting = await r.call("toolbox_env", {"name": "GREETING"})
        assert only(greeting, ToolExecutionEnd).result == "hello"
        secret = await r.call("toolbox_env", {"name": "OPENAI_API_KEY"})
        assert only(secret, ToolExecutionEnd).result == "<unset>"


async def test_a_server_that_fails_to_start_degrades_only_itself(data_dir: Path) -> None:
    async with rig(data_dir, [toolbox("broken", "fail-start"), toolbox()]) as r:
        broken, good = r.mcp.servers
        await broken.wait_until(lambda s: s.restarts >= 1)
        await good.wait_until(ok)
        health = broken.health()
        assert health.status == "degraded"
        assert "cannot open its database" in health.detail
        assert any("cannot open its database" in line for line in broken.stderr_tail())
        events = await r.call("toolbox_echo", {"text": "still works"})
        assert only(events, ToolExecutionEnd).result == "still works"
        offered = tool_names(r.fake, 0)
        assert not any(name.startswith("broken_") for name in offered)


async def test_a_server_that_hangs_at_start_is_down(data_dir: Path) -> None:
    async with rig(data_dir, [toolbox("stuck", "hang-start")], mcp_start_timeout=1) as r:
        await r.server.wait_until(down)
        assert r.server.health().status == "degraded"
        assert "stuck before the handshake" in r.server.health().detail


async def test_a_crash_is_reported_and_the_server_restarts(data_dir: Path) -> None:
    async with rig(data_dir, [toolbox()]) as r:
        await r.server.wait_until(ok)
        events = await r.call("toolbox_crash", {})
        end = only(events, ToolExecutionEnd)
        assert end.is_error
        assert "toolbox.crash failed" in str(end.result)
        await r.server.wait_until(lambda s: s.restarts >= 1 and ok(s))
        again = await r.call("toolbox_add", {"a": 1, "b": 1})
        assert only(again, ToolExecutionEnd).result == 2


async def test_a_tool_that_never_returns_times_out(data_dir: Path) -> None:
    async with rig(data_dir, [toolbox()], mcp_call_timeout=1) as r:
        await r.server.wait_until(ok)
        events = await r.call("toolbox_hang", {})
        end = only(events, ToolExecutionEnd)
        assert end.is_error
        assert "toolbox.hang did not return within 1 s" in str(end.result)
        await r.server.wait_until(lambda s: s.restarts >= 1 and ok(s))


async def test_malformed_json_rpc_from_the_server_is_survived(data_dir: Path) -> None:
    async with rig(data_dir, [toolbox()]) as r:
        await r.server.wait_until(ok)
        events = await r.call("toolbox_garbage", {})
        assert only(events, ToolExecutionEnd).result == "still here"
        after = await r.call("toolbox_add", {"a": 3, "b": 4})
        assert only(after, ToolExecutionEnd).result == 7
        assert r.server.state == "ok"


async def test_large_results_are_capped(data_dir: Path) -> None:
    async with rig(data_dir, [toolbox()], tool_output_chars=10_000) as r:
        await r.server.wait_until(ok)
        events = await r.call("toolbox_big", {"megabytes": 2})
        result = str(only(events, ToolExecutionEnd).result)
        assert result.startswith("x" * 10_000)
        assert "output cut: 1990000 more characters" in result
        followup = r.fake.requests[1].messages[-1]
        assert len(str(followup["content"])) < 11_000


async def test_a_50_mb_result_is_bounded_by_the_call_timeout(data_dir: Path) -> None:
    async with rig(data_dir, [toolbox()], mcp_call_timeout=2) as r:
        await r.server.wait_until(ok)
        events = await r.call("toolbox_big", {"megabytes": 50})
        end = only(events, ToolExecutionEnd)
        assert end.is_error
        assert "did not return within 2 s" in str(end.result)
        await r.server.wait_until(lambda s: s.restarts >= 1 and ok(s))


# How a server tells of a change to its tools: a 2026-07-28 session through a
# subscriptions/listen stream, an earlier one by a tools/list_changed notification; a server
# serving neither is listed again after each call.
ERAS = [(), ("legacy",), ("no-listen",)]


@pytest.mark.parametrize("flags", ERAS, ids=["listen", "notification", "after-calls"])
async def test_tools_follow_a_change_of_the_list(data_dir: Path, flags: tuple[str, ...]) -> None:
    async with rig(data_dir, [toolbox("toolbox", "stdio", *flags)]) as r:
        await r.server.wait_until(ok)
        await r.call("toolbox_grow", {})
        await r.server.wait_until(lambda s: "late" in s.tool_names)
        events = await r.call("toolbox_late", {})
        assert only(events, ToolExecutionEnd).result == "late tool ran"
        offered = tool_names(r.fake, -1)
        assert "toolbox_late" in offered


@pytest.mark.parametrize("flags", ERAS[:2], ids=["listen", "notification"])
async def test_a_server_that_tells_of_changes_is_not_listed_per_run(
    data_dir: Path, flags: tuple[str, ...]
) -> None:
    async with rig(data_dir, [toolbox("toolbox", "stdio", *flags)], mcp_probe_interval=3600) as r:
        await r.server.wait_until(ok)
        first = only(await r.call("toolbox_listings", {}), ToolExecutionEnd).result
        for text in ("one", "two", "three"):
            await r.call("toolbox_echo", {"text": text})
        again = only(await r.call("toolbox_listings", {}), ToolExecutionEnd).result
        assert again == first
        # Every run was offered the same tools all the same.
        assert tool_names(r.fake, 0) == tool_names(r.fake, -1)


async def test_a_server_for_other_agents_is_not_offered(data_dir: Path) -> None:
    async with rig(data_dir, [toolbox(agents=["research"])]) as r:
        await r.server.wait_until(ok)
        r.fake.enqueue(Reply(chunks=("hi",)))
        await run_turn(r.agent, "hello")
        offered = tool_names(r.fake, 0)
        assert not any(name.startswith("toolbox_") for name in offered)


@pytest.fixture
async def http_toolbox() -> AsyncIterator[str]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.mcp_servers.toolbox",
        "http",
        str(port),
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(500):  # until it listens
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            writer.close()
            break
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        await process.wait()


async def test_streamable_http_server_with_a_header_from_the_environment(
    data_dir: Path, http_toolbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLBOX_TOKEN", "Bearer t-1")
    server = McpServerConfig(
        name="toolbox", url=http_toolbox, headers={"Authorization": "TOOLBOX_TOKEN"}
    )
    async with rig(data_dir, [server]) as r:
        await r.server.wait_until(ok)
        events = await r.call("toolbox_add", {"a": 20, "b": 22})
        assert only(events, ToolExecutionEnd).result == 42


async def test_a_missing_header_variable_is_named(data_dir: Path, http_toolbox: str) -> None:
    server = McpServerConfig(
        name="toolbox", url=http_toolbox, headers={"Authorization": "NO_SUCH_VAR_X"}
    )
    async with rig(data_dir, [server]) as r:
        await r.server.wait_until(down)
        assert "environment variable NO_SUCH_VAR_X" in r.server.health().detail
