"""The built-in tools that are switched on (see `policy.enabled_builtins`), as one toolset.

Workspace tools and `shell` work in `<workspace_root>/<agent id>`, the agent taken from the
run's `CallContext`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic_ai import RunContext
from pydantic_ai.toolsets import FunctionToolset

from hub.approvals import CallContext
from hub.tools.config import ToolsConfig
from hub.tools.memory import add_memory
from hub.tools.policy import enabled_builtins
from hub.tools.shell import run_shell
from hub.tools.web_fetch import WebFetcher
from hub.tools.web_search import WebSearcher
from hub.tools.workspace import MAX_READ_CHARS, Workspace

Ctx = RunContext[CallContext]


def builtin_toolset(config: ToolsConfig) -> FunctionToolset[CallContext]:
    """A toolset with the built-in tools `config` switches on (maybe none)."""
    enabled = set(enabled_builtins(config))
    toolset: FunctionToolset[CallContext] = FunctionToolset()
    root = config.workspace_root or Path("workspace")

    def workspace(ctx: Ctx) -> Workspace:
        return Workspace(root / ctx.deps.agent_id)

    if "web_fetch" in enabled:
        fetcher = WebFetcher(
            allow_networks=config.web_fetch_allow_networks,
            max_bytes=config.web_fetch_max_bytes,
            timeout=config.web_fetch_timeout,
            output_chars=config.tool_output_chars,
        )

        async def web_fetch(url: str) -> str:
            """Fetch a web page (http or https) and return its readable text."""
            return await fetcher.fetch(url)

        toolset.add_function(web_fetch)

    if "web_search" in enabled:
        searcher = WebSearcher(config)

        async def web_search(query: str, count: int = 5) -> str:
            """Search the web: up to `count` (1 to 10) results, each a title, URL and
            snippet."""
            return await searcher.search(query, count)

        toolset.add_function(web_search)

    if "read_file" in enabled:

        async def read_file(
            ctx: Ctx, path: str, offset: int = 0, limit: int = MAX_READ_CHARS
        ) -> str:
            """Read a text file of your workspace (path relative to it), from character
            `offset`, at most `limit` characters."""
            return await asyncio.to_thread(workspace(ctx).read_file, path, offset, limit)

        toolset.add_function(read_file)

    if "write_file" in enabled:

        async def write_file(ctx: Ctx, path: str, content: str) -> str:
            """Create or overwrite a text file in your workspace (path relative to it)."""
            return await asyncio.to_thread(workspace(ctx).write_file, path, content)

        toolset.add_function(write_file)

    if "edit_file" in enabled:

        async def edit_file(ctx: Ctx, path: str, old_text: str, new_text: str) -> str:
            """Replace `old_text`, which must occur exactly once, by `new_text` in a file of
            your workspace."""
            return await asyncio.to_thread(workspace(ctx).edit_file, path, old_text, new_text)

        toolset.add_function(edit_file)

    if "list_files" in enabled:

        async def list_files(ctx: Ctx, path: str = ".") -> str:
            """List a folder of your workspace (default: its top)."""
            return await asyncio.to_thread(workspace(ctx).list_files, path)

        toolset.add_function(list_files)

    if "shell" in enabled:
        timeout = config.shell_timeout

        async def shell(ctx: Ctx, command: str) -> str:
            """Run a shell command (/bin/sh) in your workspace; returns its exit status and
            output."""
            folder = await asyncio.to_thread(workspace(ctx).ensure)
            return await run_shell(command, folder, limit=timeout)

        toolset.add_function(shell)

    if "remember" in enabled or "forget" in enabled:
        add_memory(toolset, config.memory_root or Path("memory"), enabled)

    return toolset
