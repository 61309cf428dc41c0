"""Tool-call round trip: model -> MCP stdio tool -> model, through the hub vs calling the same
MCP server directly with the official `mcp` client. Target: <= 1.3x.

One round trip is: a streamed model reply that calls `add`, the call on the MCP server, and a
second streamed model request carrying the result, read to its end. The baseline does exactly
that with the bare openai client and `mcp.Client` over stdio (one session kept open). The hub
side is `AsyncAgent.write` to `agent_end`, with the server configured in `[[mcp_servers]]`
(policy allow) and everything the hub adds: pydantic-ai's agent loop, the policy gate, the
MCP supervision wrapper, the events and the session entries written to disk. The
model server (tests/fake_openai.py) runs in its own process; each path gets the same
alternating script (a tool call, then text).

Two more paths show where the time goes: a bare pydantic-ai agent with `MCPToolset`, and the
floor under any pydantic-ai runtime: its model and `MCPToolset` driven by hand, no agent loop.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path
from typing import cast

from openai import AsyncOpenAI, AsyncStream
from openai.types.chat import ChatCompletionChunk
from pydantic_ai import Agent
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.messages import ModelMessage, ModelRequest, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.tools import RunContext
from pydantic_ai.toolsets import AbstractToolset
from pydantic_ai.usage import RunUsage

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mcp import Client, StdioServerParameters  # noqa: E402

from bench.common import report  # noqa: E402
from hub.agent import AsyncAgent  # noqa: E402
from hub.events import AgentEnd, AgentEvent, ToolExecutionEnd  # noqa: E402
from hub.model import Model, ModelTurn, ToolCallFinished  # noqa: E402
from hub.providers import ModelConfig, build_model  # noqa: E402
from hub.sessions import SessionStore  # noqa: E402
from hub.tools.config import McpServerConfig, ToolsConfig  # noqa: E402
from hub.tools.mcp import McpServers  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.fake_openai import FakeOpenAI, Reply, ToolCall  # noqa: E402

SHM = "/dev/shm" if Path("/dev/shm").is_dir() else None
ROUNDS = 60
WARM_UP = 5
ARGS = {"a": 20, "b": 22}
SERVER_ARGS = ["-m", "tests.mcp_servers.toolbox", "stdio"]
PATHS = ("bare", "floor", "library", "runtime", "hub")


def params_transport() -> object:
    from fastmcp.client.transports import StdioTransport

    return StdioTransport(sys.executable, SERVER_ARGS, cwd=str(ROOT), log_file=Path("/dev/null"))


def serve(port: int, ready: ProcessEvent) -> None:
    async def main() -> None:
        async with FakeOpenAI(port=port) as fake:
            call = Reply(chunks=(), tool_calls=(ToolCall("toolbox_add", json.dumps(ARGS)),))
            answer = Reply(chunks=("The sum is ", "42."))
            for _ in range(len(PATHS) * (ROUNDS + WARM_UP)):
                fake.enqueue(call, answer)
            ready.set()
            await asyncio.Event().wait()

    asyncio.run(main())


async def stream_request(
    openai: AsyncOpenAI, messages: list[dict[str, object]], tools: list[dict[str, object]]
) -> AsyncStream[ChatCompletionChunk]:
    stream = await openai.chat.completions.create(
        model="bench",
        messages=messages,  # type: ignore[arg-type]
        tools=tools,  # type: ignore[arg-type]
        stream=True,
    )
    return cast(AsyncStream[ChatCompletionChunk], stream)


async def tool_definitions(mcp: Client) -> list[dict[str, object]]:
    """The server's tools as OpenAI function definitions, as the hub offers them."""
    listed = await mcp.list_tools()
    return [
        {
            "type": "function",
            "function": {
                "name": f"toolbox_{tool.name}",
                "description": tool.description or "",
                "parameters": tool.input_schema,
            },
        }
        for tool in listed.tools
    ]


async def bare_round_trip(
    openai: AsyncOpenAI, mcp: Client, tools: list[dict[str, object]]
) -> float:
    started = time.perf_counter()
    messages: list[dict[str, object]] = [{"role": "user", "content": "add 20 and 22"}]
    arguments = ""
    call_id = name = ""
    stream = await stream_request(openai, messages, tools)
    async for chunk in stream:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call_id = call.id or call_id
            name = (call.function.name if call.function else None) or name
            arguments += (call.function.arguments if call.function else None) or ""
    assert name == "toolbox_add", name
    result = await mcp.call_tool("add", json.loads(arguments))
    text = "".join(getattr(block, "text", "") for block in result.content)
    messages += [
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": text},
    ]
    reply = ""
    stream = await stream_request(openai, messages, tools)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            reply += chunk.choices[0].delta.content
    assert text == "42" and reply == "The sum is 42.", (text, reply)
    return time.perf_counter() - started


async def hub_round_trip(agent: AsyncAgent) -> float:
    # A fresh session each time, so the model request carries what the baseline's does.
    await agent.new_session()
    done = asyncio.Event()
    results: list[object] = []

    def on_event(event: AgentEvent) -> None:
        if isinstance(event, ToolExecutionEnd):
            results.append(event.result)
        elif isinstance(event, AgentEnd):
            done.set()

    unsubscribe = agent.subscribe(on_event)
    started = time.perf_counter()
    agent.write("add 20 and 22")
    await done.wait()
    elapsed = time.perf_counter() - started
    unsubscribe()
    assert results == [42], results
    return elapsed


async def runtime_round_trip(model: Model) -> float:
    """The hub's model runtime alone (pydantic-ai, the policy gate, the MCP wrapper), no agent."""
    started = time.perf_counter()
    results = []
    async for part in model.stream(ModelTurn("bench", "r-1", "add 20 and 22", ())):
        if isinstance(part, ToolCallFinished):
            results.append(part.result)
    assert results == [42], results
    return time.perf_counter() - started


async def pydantic_ai_round_trip(agent: Agent[None, str]) -> float:
    """A bare pydantic-ai agent with MCPToolset on the same server: the library's own cost."""
    started = time.perf_counter()
    async with agent.iter("add 20 and 22") as run:
        async for node in run:
            if Agent.is_model_request_node(node) or Agent.is_call_tools_node(node):
                async with node.stream(run.ctx) as events:
                    async for _ in events:
                        pass
    assert run.result is not None and run.result.output == "The sum is 42.", run.result
    return time.perf_counter() - started


async def floor_round_trip(model: OpenAIChatModel, toolset: AbstractToolset[None]) -> float:
    """pydantic-ai's model and MCPToolset without its agent loop: two streamed requests and the
    call in between, what any runtime on them pays at least."""
    started = time.perf_counter()
    context = RunContext(deps=None, model=model, usage=RunUsage())
    tools = await toolset.get_tools(context)
    parameters = ModelRequestParameters(function_tools=[t.tool_def for t in tools.values()])
    messages: list[ModelMessage] = [ModelRequest.user_text_prompt("add 20 and 22")]
    async with model.request_stream(messages, None, parameters, context) as stream:
        async for _ in stream:
            pass
    messages.append(stream.get())
    call = next(p for p in stream.get().parts if isinstance(p, ToolCallPart))
    tool = tools[call.tool_name]
    result = await toolset.call_tool(
        call.tool_name, tool.args_validator.validate_json(call.args_as_json_str()), context, tool
    )
    messages.append(ModelRequest([ToolReturnPart(call.tool_name, result, call.tool_call_id)]))
    async with model.request_stream(messages, None, parameters, context) as stream:
        async for _ in stream:
            pass
    reply = stream.get().parts[0]
    assert result == 42 and isinstance(reply, TextPart) and reply.content == "The sum is 42."
    return time.perf_counter() - started


async def main() -> None:
    port = free_port()
    ready = multiprocessing.Event()
    fake = multiprocessing.Process(target=serve, args=(port, ready), daemon=True)
    fake.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("the fake model server did not start")
        base_url = f"http://127.0.0.1:{port}/v1"
        # Session files on tmpfs where there is one: the bench measures the tool path, not the
        # disk's fsync latency (tens of ms per entry on a slow disk; see docs/tools.md).
        with tempfile.TemporaryDirectory(dir=SHM) as tmp:
            tooling = ToolsConfig(
                mcp_servers=[
                    McpServerConfig(
                        name="toolbox", command=sys.executable, args=SERVER_ARGS, cwd=ROOT
                    )
                ],
                tool_policies={"toolbox.*": "allow"},
                mcp_log_dir=Path(tmp) / "logs",
            )
            servers = McpServers(tooling)
            config = ModelConfig(
                spec="openai:bench", openai_base_url=base_url, builtin_tools=False, tooling=tooling
            )
            agent = AsyncAgent(
                "bench", build_model(config, mcp_servers=servers), SessionStore(Path(tmp))
            )
            await servers.start()
            await servers.servers[0].wait_until(lambda s: s.state != "starting")
            openai = AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
            params = StdioServerParameters(command=sys.executable, args=SERVER_ARGS, cwd=ROOT)
            runtime = build_model(config, mcp_servers=servers)
            library: Agent[None, str] = Agent(
                OpenAIChatModel("bench", provider=OpenAIProvider(base_url=base_url, api_key="b")),
                toolsets=[
                    MCPToolset(params_transport(), tool_error_behavior="failed").prefixed("toolbox")
                ],
            )
            floor_model = OpenAIChatModel(
                "bench", provider=OpenAIProvider(base_url=base_url, api_key="b")
            )
            floor_tools = MCPToolset(params_transport(), tool_error_behavior="failed").prefixed(
                "toolbox"
            )
            times: dict[str, list[float]] = {k: [] for k in PATHS}
            async with Client(params) as mcp, library, floor_tools:
                tools = await tool_definitions(mcp)
                for index in range(ROUNDS + WARM_UP):
                    # Interleaved, so every path sees the same machine load.
                    sample = {
                        "bare": await bare_round_trip(openai, mcp, tools),
                        "floor": await floor_round_trip(floor_model, floor_tools),
                        "library": await pydantic_ai_round_trip(library),
                        "runtime": await runtime_round_trip(runtime),
                        "hub": await hub_round_trip(agent),
                    }
                    if index >= WARM_UP:
                        for key, value in sample.items():
                            times[key].append(value)
            await openai.close()
            await agent.close()
            await servers.stop()
        median = {key: statistics.median(values) * 1000 for key, values in times.items()}
        print(f"{ROUNDS} round trips each (after {WARM_UP} warm-up), medians:")
        report(
            "tool round trip model -> MCP stdio tool -> model, hub vs bare openai + mcp client",
            baseline=median["bare"],
            candidate=median["hub"],
            unit="ms",
            target=1.3,
            higher_is_better=False,
        )
        report(
            "floor: pydantic-ai's model + MCPToolset without an agent loop vs bare",
            baseline=median["bare"],
            candidate=median["floor"],
            unit="ms",
            target=1.3,
            higher_is_better=False,
        )
        print(
            "split: bare pydantic-ai agent + MCPToolset {library:.1f} ms, hub model runtime "
            "(gate, MCP supervision) {runtime:.1f} ms, full hub agent {hub:.1f} ms".format(**median)
        )
        report(
            "hub share: full hub agent vs bare pydantic-ai agent with MCPToolset",
            baseline=median["library"],
            candidate=median["hub"],
            unit="ms",
            target=1.3,
            higher_is_better=False,
        )
    finally:
        fake.terminate()
        fake.join(5)


if __name__ == "__main__":
    asyncio.run(main())
