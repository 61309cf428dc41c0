"""`PolicyGate`: the one place every tool call passes, whatever toolset offers the tool.

`deny`ed tools are not offered to the model at all (and refused if called anyway); `ask` waits
for a person through `hub.approvals`; every result is capped at `output_chars`. A tool that
raises does not end the run: the model sees a failed result naming the error (and the agent
shows tool_execution_end with is_error). MCP tools carry their `"<server>.<tool>"` name in
their definition's metadata (see `hub.tools.mcp`); that is the name policies, approvals and
events use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import JsonValue, ValidationError
from pydantic_ai import ModelRetry, RunContext, ToolFailed
from pydantic_ai.toolsets import AbstractToolset, WrapperToolset
from pydantic_ai.toolsets.abstract import ToolsetTool
from pydantic_core import to_jsonable_python

from hub.approvals import MAX_SHOWN_ARGS, Approvals, CallContext
from hub.errors import CodedError
from hub.tools.policy import ToolPolicies

SHOWN_NAME = "agenthub_name"
SERVER = "agenthub_server"


class ToolDeniedError(CodedError):
    """A tool call was not run: its policy is `deny`, or a person did not approve it."""

    code = "tool_denied"


@dataclass
class PolicyGate(WrapperToolset[CallContext]):
    policies: ToolPolicies = field(default_factory=lambda: ToolPolicies({}))
    approvals: Approvals | None = None
    output_chars: int = 100_000
    # model-facing name -> the name people and policies see (filled as tools are listed)
    shown: dict[str, str] = field(default_factory=dict)

    def display_name(self, name: str) -> str:
        return self.shown.get(name, name)

    def _policy(self, name: str, tool: ToolsetTool[CallContext]) -> tuple[str, str]:
        metadata = tool.tool_def.metadata or {}
        shown = str(metadata.get(SHOWN_NAME, name))
        server = metadata.get(SERVER)
        return shown, self.policies.policy(shown, server=str(server) if server else None)

    async def get_tools(self, ctx: RunContext[CallContext]) -> dict[str, ToolsetTool[CallContext]]:
        tools = await self.wrapped.get_tools(ctx)
        offered: dict[str, ToolsetTool[CallContext]] = {}
        for name, tool in tools.items():
            shown, policy = self._policy(name, tool)
            if policy != "deny":
                self.shown[name] = shown
                offered[name] = replace(tool, toolset=self)
        return offered

    async def call_tool(
        self,
        name: str,
        tool_args: dict[str, Any],
        ctx: RunContext[CallContext],
        tool: ToolsetTool[CallContext],
    ) -> Any:
        try:
            return await self._call(name, tool_args, ctx, tool)
        except (ModelRetry, ToolFailed, ValidationError):
            raise  # pydantic-ai's own outcomes: a retry prompt or a failed result
        except Exception as exc:
            raise ToolFailed(f"{type(exc).__name__}: {exc}") from exc

    async def _call(
        self,
        name: str,
        tool_args: dict[str, Any],
        ctx: RunContext[CallContext],
        tool: ToolsetTool[CallContext],
    ) -> Any:
        shown, policy = self._policy(name, tool)
        if policy == "deny":
            raise ToolDeniedError(f"{shown} is not allowed here (policy deny)")
        if policy == "ask":
            await self._ask(ctx.deps, shown, tool_args)
        result = await self.wrapped.call_tool(name, tool_args, ctx, tool)
        return cap_output(result, self.output_chars)

    async def _ask(self, context: CallContext, shown: str, args: dict[str, Any]) -> None:
        if self.approvals is None:
            raise ToolDeniedError(f"{shown} needs a person's approval and none can be asked here")
        shown_args: JsonValue = to_jsonable_python(args, fallback=str)
        if len(json.dumps(shown_args)) > MAX_SHOWN_ARGS:
            raise ToolDeniedError(
                f"{shown} was not run: its arguments are too long to show a person for approval"
            )
        answer = await self.approvals.ask(context, shown, shown_args)
        if answer.decision != "approved":
            raise ToolDeniedError(f"{shown} was not run: {answer.decision} by {answer.by}")


def gate(
    toolset: AbstractToolset[CallContext],
    policies: ToolPolicies,
    approvals: Approvals | None,
    output_chars: int,
) -> PolicyGate:
    return PolicyGate(toolset, policies=policies, approvals=approvals, output_chars=output_chars)


def cap_output(result: Any, limit: int) -> Any:
    """`result` as it is when its text fits in `limit` characters, else its text cut there."""
    if isinstance(result, str):
        return result if len(result) <= limit else _cut(result, limit)
    try:
        text = json.dumps(to_jsonable_python(result, fallback=str, bytes_mode="base64"))
    except (TypeError, ValueError):
        text = str(result)
    return result if len(text) <= limit else _cut(text, limit)


def _cut(text: str, limit: int) -> str:
    return text[:limit] + f"\n[... output cut: {len(text) - limit} more characters]"
