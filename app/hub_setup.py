"""The hub as configured: its agents with their models and tools, the session rules, the
approvals and the agents' mail. The composition root (`app.compose`) builds it with
`build_hub`; `doctor` checks the same model and tool configuration."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import ValidationError

from app.agents import agent_model_configs, restrict_mcp_servers
from app.config import ConfigError, Settings, env_name
from hub.agent_mail import AgentMail
from hub.approvals import Approvals
from hub.errors import UnknownAgentError, describe_validation
from hub.hub import AgentSetup, Hub
from hub.providers import ModelConfig, build_compactor, build_model, describe_model
from hub.scopes import ConversationConfig
from hub.tools.config import TUNABLES, ToolsConfig
from hub.tools.memory import memory_root
from hub.tools.web_search import web_search_problem
from hub.transcribe import Transcriber

if TYPE_CHECKING:
    from hub.tools.mcp import McpServers


def conversation_config(settings: Settings) -> ConversationConfig:
    """Who the owner is and where everyone else's messages go (`hub.scopes`)."""
    owners = settings.owners
    if owners is None and settings.telegram_allowed_users:
        # An allow list names whom the bot serves: one person is the owner; with several,
        # nobody is assumed to be, and each gets a conversation of their own.
        allowed = settings.telegram_allowed_users
        owners = [f"telegram:{allowed[0]}"] if len(allowed) == 1 else []
    try:
        return ConversationConfig(
            owners=frozenset(owners) if owners is not None else None,
            dm_scope=settings.dm_scope,
            identity_links=settings.identity_links,
            guest_devices=frozenset(settings.guest_devices),
            max_concurrent_runs=settings.max_concurrent_runs,
        )
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        reason = str(error["msg"]).removeprefix("Value error, ")
        # A rule across fields names its field itself.
        where = f"{env_name(str(error['loc'][0]))}: " if error["loc"] else ""
        raise ConfigError(f"{where}{reason}") from None


def tools_config(settings: Settings) -> ToolsConfig:
    unknown = sorted(set(settings.tool_settings) - set(TUNABLES))
    if unknown:
        raise ConfigError(
            f"tool_settings: unknown key {unknown[0]!r}; known keys: {', '.join(TUNABLES)}"
        )
    try:
        return ToolsConfig.model_validate(
            {
                **settings.tool_settings,
                "enable_tools": settings.enable_tools,
                "tool_policies": settings.tool_policies,
                "mcp_servers": settings.mcp_servers,
                "web_search_provider": settings.web_search_provider,
                "web_search_url": settings.web_search_url,
                "brave_api_key": settings.brave_api_key,
                "tavily_api_key": settings.tavily_api_key,
                "workspace_root": settings.data_dir / "workspace",
                "memory_root": memory_root(settings.data_dir),
                "mcp_log_dir": settings.data_dir / "logs",
            }
        )
    except ValidationError as exc:
        raise ConfigError(f"tools: {describe_validation(exc)}") from None


def model_config(settings: Settings) -> ModelConfig:
    config = ModelConfig(
        spec=settings.model,
        openai_api_key=settings.openai_api_key,
        openai_base_url=settings.openai_base_url,
        anthropic_api_key=settings.anthropic_api_key,
        context_window=settings.context_window,
        image_input=settings.image_input,
        tools=settings.tools,
        tooling=tools_config(settings),
    )
    if settings.system_prompt:
        config = config.model_copy(update={"system_prompt": settings.system_prompt})
    return config


def transcriber(settings: Settings) -> Transcriber | None:
    """Speech to text for voice notes, when `AGENTHUB_TRANSCRIBE_MODEL` names a model."""
    if not settings.transcribe_model:
        return None
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    try:
        return Transcriber(
            settings.transcribe_model, api_key=key, base_url=settings.openai_base_url
        )
    except ValueError as exc:
        raise ConfigError(f"AGENTHUB_TRANSCRIBE_MODEL: {exc}") from None


def build_hub(settings: Settings) -> tuple[Hub, McpServers | None, str]:
    """The hub, its MCP servers (a Service for the caller to run; None without any) and the
    start-up line(s) saying which model each agent runs. Raises ConfigError naming what is
    wrong."""
    config = model_config(settings)
    approvals = Approvals(timeout=config.tooling.approval_timeout)
    try:
        tooling = restrict_mcp_servers(settings.agents, config.tooling)
        configs = agent_model_configs(settings.agents, config, settings.data_dir)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for _, agent_config in configs.values():
        problem = web_search_problem(agent_config.tooling)
        if problem is not None:
            raise ConfigError(problem)
    mcp = None
    if tooling.mcp_servers:
        # pydantic-ai comes with the MCP client: only a hub with MCP servers imports it here.
        from hub.tools.mcp import McpServers

        mcp = McpServers(tooling)
    mail = AgentMail(
        settings.data_dir,
        delivery={agent_id: agent.messages for agent_id, agent in settings.agents.items()},
    )
    setups = []
    for agent_id, (name, agent_config) in configs.items():
        try:
            model = build_model(agent_config, approvals=approvals, mcp_servers=mcp, mail=mail)
        except ValueError as exc:
            where = f"agents.{agent_id}.model" if settings.agents else "AGENTHUB_MODEL"
            raise ConfigError(f"{where}: {exc}") from None
        specs = settings.models
        if agent_id in settings.agents and settings.agents[agent_id].models is not None:
            specs = settings.agents[agent_id].models or []
        others = []
        for spec in specs:
            try:
                others.append(
                    build_model(
                        agent_config.model_copy(update={"spec": spec}),
                        approvals=approvals,
                        mcp_servers=mcp,
                        mail=mail,
                    )
                )
            except ValueError as exc:
                where = f"agents.{agent_id}.models" if settings.agents else "AGENTHUB_MODELS"
                raise ConfigError(f"{where}: {spec}: {exc}") from None
        compactor = build_compactor(model, agent_config)
        setups.append(AgentSetup(agent_id, name, model, compactor, tuple(others)))
    try:
        hub = Hub(
            settings.data_dir,
            approvals=approvals,
            conversations=conversation_config(settings),
            agents=setups,
            bindings=settings.bindings,
        )
    except UnknownAgentError as exc:
        known = ", ".join(configs)
        raise ConfigError(f"bindings: {exc} (configured: {known})") from None
    mail.attach(hub)
    hub.transcriber = transcriber(settings)
    model_line = "\n".join(
        f"model: {describe_model(agent_config)}"
        if len(configs) == 1
        else f"agent {agent_id}: model {describe_model(agent_config)}"
        for agent_id, (_, agent_config) in configs.items()
    )
    return hub, mcp, model_line
