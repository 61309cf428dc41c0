"""A test MCP server built with the `mcp` SDK's server side.

    python -m tests.mcp_servers.toolbox stdio            # over stdin/stdout
    python -m tests.mcp_servers.toolbox stdio legacy     # ... refusing the 2026-07-28 protocol
    python -m tests.mcp_servers.toolbox stdio no-listen  # ... serving no subscriptions/listen
    python -m tests.mcp_servers.toolbox http PORT        # streamable HTTP at 127.0.0.1:PORT/mcp
    python -m tests.mcp_servers.toolbox fail-start       # writes a reason to stderr, exits 1
    python -m tests.mcp_servers.toolbox hang-start       # never answers the handshake

Tools: `echo`, `add`, `big` (a result of N megabytes), `hang` (never returns), `crash` (the
process exits), `garbage` (writes a malformed JSON-RPC line to stdout, then answers),
`grow` (adds a tool `late` and tells the client its tool list changed, in either protocol
era), `env` (one variable of its environment), `listings` (how many tools/list requests it
answered).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import METHOD_NOT_FOUND

server: MCPServer = MCPServer("toolbox")


class Requests(ServerMiddleware[Any]):
    """Counts the requests it sees by method; refuses the methods in `refused`."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.refused: set[str] = set()

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        self.counts[ctx.method] = self.counts.get(ctx.method, 0) + 1
        if ctx.method in self.refused:
            raise MCPError(METHOD_NOT_FOUND, f"{ctx.method} is not served by this toolbox")
        return await call_next(ctx)


requests = Requests()
server.middleware.append(requests)


@server.tool()
def echo(text: str) -> str:
    """Return the text."""
    return text


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def big(megabytes: int) -> str:
    """A string of `megabytes` MB."""
    return "x" * (megabytes * 1_000_000)


@server.tool()
async def hang() -> str:
    """Never returns."""
    await anyio.sleep_forever()
    return "unreachable"


@server.tool()
def crash() -> str:
    """The server process exits."""
    print("crashing on purpose", file=sys.stderr, flush=True)
    os._exit(3)


@server.tool()
def garbage() -> str:
    """Write a line that is not JSON-RPC to stdout, then answer normally."""
    # fd 1 itself: the SDK points sys.stdout elsewhere to keep the protocol channel clean.
    os.write(1, b'{"jsonrpc": "2.0", "id": oops this is not json\n')
    os.write(1, b'{"jsonrpc": "2.0", "method": 42}\n')
    return "still here"


@server.tool()
async def grow(ctx: Context) -> str:
    """Add a tool named `late` and notify the client."""

    def late() -> str:
        """A tool that appeared later."""
        return "late tool ran"

    server.add_tool(late)
    await ctx.notify_tools_changed()  # 2026-07-28 sessions: to `subscriptions/listen` streams
    await ctx.session.send_tool_list_changed()  # earlier sessions: a notification
    return "grew"


@server.tool()
def listings() -> int:
    """How many tools/list requests this server answered."""
    return requests.counts.get("tools/list", 0)


@server.tool()
def env(name: str) -> str:
    """The value of one environment variable, or `<unset>`."""
    return os.environ.get(name, "<unset>")


async def serve_legacy_stdio() -> None:
    """Serve only the initialize-handshake era (before 2026-07-28), as older servers do."""
    from mcp.server.lowlevel.server import NotificationOptions
    from mcp.server.runner import serve_loop
    from mcp.server.stdio import stdio_server

    lowlevel = server._lowlevel_server  # the SDK's stdio entry serves both eras
    async with stdio_server() as (read, write), lowlevel.lifespan(lowlevel) as state:
        options = lowlevel.create_initialization_options(NotificationOptions(tools_changed=True))
        await serve_loop(lowlevel, read, write, lifespan_state=state, init_options=options)


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    if "no-listen" in sys.argv[2:]:
        requests.refused.add("subscriptions/listen")
    if mode == "fail-start":
        print("toolbox: cannot open its database (test failure)", file=sys.stderr, flush=True)
        sys.exit(1)
    if mode == "hang-start":
        print("toolbox: stuck before the handshake", file=sys.stderr, flush=True)
        time.sleep(3600)
    if mode == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
        return
    print("toolbox: serving on stdio", file=sys.stderr, flush=True)
    if "legacy" in sys.argv[2:]:
        anyio.run(serve_legacy_stdio)
        return
    server.run("stdio")


if __name__ == "__main__":
    main()
