"""The one policy table: whether a tool call runs (`allow`), waits for a person (`ask`) or is
refused (`deny`).

Resolution, first match wins: the tool's own entry in `[tool_policies]`; for an MCP tool
`"<server>.*"`; then the default: built-in workspace writes and `shell` ask, MCP tools ask,
everything else (web_fetch, web_search, reads, the calculator, user tools) is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping

from hub.tools.config import BUILTIN_TOOL_NAMES, TOOL_GROUPS, ToolPolicy, ToolsConfig

DEFAULT_POLICIES: Mapping[str, ToolPolicy] = {
    "web_fetch": "allow",
    "web_search": "allow",
    "read_file": "allow",
    "list_files": "allow",
    "write_file": "ask",
    "edit_file": "ask",
    "shell": "ask",
    "remember": "allow",
    "forget": "allow",
}
MCP_DEFAULT: ToolPolicy = "ask"


class ToolPolicies:
    """Policies by tool name; MCP tools are named `"<server>.<tool>"`."""

    def __init__(self, policies: Mapping[str, ToolPolicy]) -> None:
        self._policies = dict(policies)

    @classmethod
    def from_config(cls, config: ToolsConfig) -> ToolPolicies:
        return cls(config.tool_policies)

    def policy(self, tool: str, *, server: str | None = None) -> ToolPolicy:
        """The policy of `tool` (its full name; pass `server` for an MCP tool)."""
        if tool in self._policies:
            return self._policies[tool]
        if server is not None:
            return self._policies.get(f"{server}.*", MCP_DEFAULT)
        return DEFAULT_POLICIES.get(tool, "allow")


def enabled_builtins(config: ToolsConfig) -> list[str]:
    """The built-in tools switched on: named in `enable_tools` (or its group), or given a
    policy other than `deny`; a `deny` policy switches a tool off whatever enabled it."""
    names: set[str] = set()
    for entry in config.enable_tools:
        names.update(TOOL_GROUPS.get(entry, (entry,)))
    names.update(
        n for n, p in config.tool_policies.items() if n in BUILTIN_TOOL_NAMES and p != "deny"
    )
    return [n for n in BUILTIN_TOOL_NAMES if n in names and config.tool_policies.get(n) != "deny"]
