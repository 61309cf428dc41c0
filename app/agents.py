"""Configured agents: `[agents.<id>]` tables, each with its own model, prompt, tools and
policies over the top-level defaults, and `[[bindings]]` that route chats to them.

Without `[agents]` there is one agent, `main`, configured by the top-level settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from hub.agent_mail import Delivery
from hub.hub import DEFAULT_AGENT_ID
from hub.providers.config import ModelConfig
from hub.tools.config import ToolPolicy, ToolsConfig

AgentId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]


class AgentSettings(BaseModel):
    """One `[agents.<id>]` table. Unset fields take the top-level setting."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, max_length=100, description="shown in the UIs")
    model: str | None = None
    models: list[str] | None = Field(
        default=None, description="other model specs a chat may switch to (`/model`)"
    )
    system_prompt: str | None = None
    system_prompt_file: Path | None = None
    tools: list[str] | None = None
    enable_tools: list[str] | None = None
    tool_policies: dict[str, ToolPolicy] = Field(default_factory=dict)
    mcp_servers: list[str] | None = Field(
        default=None, description="names of [[mcp_servers]] this agent may use (default: all)"
    )
    context_window: int | None = Field(default=None, ge=512)
    image_input: bool | None = Field(
        default=None, description="whether the model sees images (default: its profile says)"
    )
    messages: Delivery = Field(
        default="turn",
        description="messages from other agents: run as a turn (`turn`) or wait in the inbox",
    )

    def prompt(self, base_dir: Path) -> str | None:
        """The system prompt, read from `system_prompt_file` (relative to the config's
        folder) when given. Raises ValueError naming the file when it cannot be read."""
        if self.system_prompt_file is None:
            return self.system_prompt
        path = self.system_prompt_file.expanduser()
        path = path if path.is_absolute() else base_dir / path
        try:
            return path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"system_prompt_file {path}: {exc}") from None


AgentTable = dict[AgentId, AgentSettings]


def agent_model_configs(
    agents: AgentTable, base: ModelConfig, base_dir: Path
) -> dict[str, tuple[str, ModelConfig]]:
    """Each agent's display name and model configuration: its own fields over `base`.
    Without `[agents]`, the one agent `main` with `base`. Raises ValueError naming the agent
    and the field."""
    if not agents:
        return {DEFAULT_AGENT_ID: (DEFAULT_AGENT_ID, base)}
    servers = {server.name for server in base.tooling.mcp_servers}
    configs: dict[str, tuple[str, ModelConfig]] = {}
    for agent_id, agent in agents.items():
        unknown = sorted(set(agent.mcp_servers or ()) - servers)
        if unknown:
            raise ValueError(
                f"agents.{agent_id}.mcp_servers: no [[mcp_servers]] named {unknown[0]!r}"
            )
        try:
            prompt = agent.prompt(base_dir)
        except ValueError as exc:
            raise ValueError(f"agents.{agent_id}: {exc}") from None
        tooling = base.tooling.model_copy(
            update={
                "tool_policies": base.tooling.tool_policies | agent.tool_policies,
                "enable_tools": (
                    agent.enable_tools
                    if agent.enable_tools is not None
                    else base.tooling.enable_tools
                ),
            }
        )
        update: dict[str, object] = {"tooling": tooling}
        for field, value in (
            ("spec", agent.model),
            ("system_prompt", prompt),
            ("tools", agent.tools),
            ("context_window", agent.context_window),
            ("image_input", agent.image_input),
        ):
            if value is not None:
                update[field] = value
        configs[agent_id] = (agent.name or agent_id, base.model_copy(update=update))
    return configs


def restrict_mcp_servers(agents: AgentTable, tooling: ToolsConfig) -> ToolsConfig:
    """The MCP servers, each limited to the agents that list it (or all, for an agent that
    lists none) on top of the server's own `agents`. Raises ValueError for a server naming an
    agent that is not configured."""
    if not agents:
        return tooling
    servers = []
    for server in tooling.mcp_servers:
        unknown = sorted(set(server.agents or ()) - set(agents))
        if unknown:
            raise ValueError(f"mcp_servers {server.name!r}: no agent {unknown[0]!r}")
        allowed = [
            agent_id
            for agent_id, agent in agents.items()
            if server.serves(agent_id)
            and (agent.mcp_servers is None or server.name in agent.mcp_servers)
        ]
        servers.append(server.model_copy(update={"agents": allowed}))
    return tooling.model_copy(update={"mcp_servers": servers})
