"""Tool settings: which built-in tools are on, their policies, the MCP servers, and the caps.

TOML (see docs/tools.md):

    enable_tools = ["web_fetch", "web_search", "workspace", "shell"]
    [tool_policies]
    shell = "ask"
    "files.delete" = "deny"
    [[mcp_servers]]
    name = "files"
    command = "npx"
    args = ["-y", "@modelcontextprotocol/server-filesystem", "/srv"]
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

ToolPolicy = Literal["allow", "ask", "deny"]
SearchProvider = Literal["brave", "tavily", "searxng"]

WORKSPACE_TOOLS = ("read_file", "write_file", "edit_file", "list_files")
AGENT_TOOLS = ("list_agents", "send_to_agent", "broadcast", "get_messages", "mark_read")
MEMORY_TOOLS = ("remember", "forget")
BUILTIN_TOOL_NAMES = (
    "web_fetch",
    "web_search",
    *WORKSPACE_TOOLS,
    "shell",
    *AGENT_TOOLS,
    *MEMORY_TOOLS,
)
# `enable_tools` accepts a tool name, `workspace` for the four file tools, `agents` for the
# tools that message the hub's other agents, or `memory` for notes kept across conversations.
TOOL_GROUPS: dict[str, tuple[str, ...]] = {
    "workspace": WORKSPACE_TOOLS,
    "agents": AGENT_TOOLS,
    "memory": MEMORY_TOOLS,
}

# The limits `[tool_settings]` in config.toml may change (the rest comes from its own keys).
TUNABLES = (
    "approval_timeout",
    "tool_output_chars",
    "web_fetch_max_bytes",
    "web_fetch_timeout",
    "web_fetch_allow_networks",
    "web_search_timeout",
    "shell_timeout",
    "mcp_call_timeout",
    "mcp_start_timeout",
    "mcp_probe_interval",
    "mcp_restart_backoff",
)

ServerName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9-]{0,31}$")]
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class McpServerConfig(BaseModel):
    """One `[[mcp_servers]]` entry: a stdio server (`command`) or a streamable-HTTP one (`url`).

    `headers` maps a header name to the name of an environment variable holding its value, so
    no secret is written in the config file. `agents` limits the server to those agent ids."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: ServerName
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: Path | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    agents: list[str] | None = None

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError(f"mcp server {self.name!r}: give either command (stdio) or url (HTTP)")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"mcp server {self.name!r}: url must start with http:// or https://")
        for header, variable in self.headers.items():
            if not _ENV_NAME.match(variable):
                raise ValueError(
                    f"mcp server {self.name!r}: header {header!r} must name an environment "
                    "variable holding its value"
                )
        return self

    @property
    def transport(self) -> Literal["stdio", "http"]:
        return "stdio" if self.command is not None else "http"

    def serves(self, agent_id: str) -> bool:
        return self.agents is None or agent_id in self.agents


class ToolsConfig(BaseModel):
    """Everything the tool layer needs, built by the composition root from settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enable_tools: list[str] = Field(default_factory=list)
    tool_policies: dict[str, ToolPolicy] = Field(default_factory=dict)
    mcp_servers: list[McpServerConfig] = Field(default_factory=list)
    workspace_root: Path | None = Field(
        default=None, description="<data-dir>/workspace; each agent works in its own folder"
    )
    memory_root: Path | None = Field(
        default=None, description="<data-dir>/memory; each agent keeps its notes in its own folder"
    )
    approval_timeout: float = Field(default=300.0, gt=0, description="seconds before `ask` expires")
    tool_output_chars: int = Field(default=100_000, ge=1_000, description="cap on a tool's result")
    web_fetch_max_bytes: int = Field(default=5_000_000, ge=1_000)
    web_fetch_timeout: float = Field(default=20.0, gt=0)
    web_fetch_allow_networks: list[IpNetwork] = Field(
        default_factory=list,
        description="private/loopback networks web_fetch may reach anyway (CIDR), e.g. a LAN wiki",
    )
    web_search_provider: SearchProvider | None = Field(
        default=None,
        description="None: searxng when web_search_url is set, else one with a key (brave first)",
    )
    web_search_url: str | None = Field(
        default=None,
        repr=False,
        description="the SearXNG instance, or another endpoint for Brave or Tavily",
    )
    brave_api_key: SecretStr | None = None
    tavily_api_key: SecretStr | None = None
    web_search_timeout: float = Field(default=15.0, gt=0)
    shell_timeout: float = Field(default=60.0, gt=0)
    mcp_call_timeout: float = Field(default=60.0, gt=0)
    mcp_start_timeout: float = Field(default=20.0, gt=0)
    mcp_probe_interval: float = Field(
        default=15.0, gt=0, description="seconds between checks that a server still answers"
    )
    mcp_restart_backoff: float = Field(
        default=1.0, gt=0, description="first wait before a restart; doubles up to 60 s"
    )
    mcp_log_dir: Path | None = Field(default=None, description="where MCP servers' stderr goes")

    @field_validator("enable_tools")
    @classmethod
    def _known_tools(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in BUILTIN_TOOL_NAMES and name not in TOOL_GROUPS:
                known = ", ".join([*BUILTIN_TOOL_NAMES, *TOOL_GROUPS])
                raise ValueError(f"unknown tool {name!r}; built-in tools are {known}")
        return value

    @field_validator("web_search_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("mcp_servers")
    @classmethod
    def _unique_servers(cls, value: list[McpServerConfig]) -> list[McpServerConfig]:
        names = [server.name for server in value]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two mcp servers are named {name!r}")
        return value
