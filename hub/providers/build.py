"""The composition helpers: a `ModelConfig` in, the hub `Model` (and its compactor) out.

pydantic-ai and the provider SDKs take seconds to import, so they are imported only when a
spec needs them: `echo` starts without them, `openai:` never loads the Anthropic SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.echo import EchoModel
from hub.model import Compactor, Model
from hub.providers.compaction import BudgetCompactor, context_window_for
from hub.providers.config import ModelConfig
from hub.providers.specs import ModelSpec, openai_base_url, parse_spec

if TYPE_CHECKING:
    from pydantic_ai.models import Model as PydanticModel

    from hub.agent_mail import AgentMail
    from hub.approvals import Approvals
    from hub.providers.failures import Endpoint
    from hub.tools.mcp import McpServers

# A local server needs no key, but the OpenAI client insists on one.
_NO_KEY = "no-key"


def build_model(
    config: ModelConfig,
    *,
    approvals: Approvals | None = None,
    mcp_servers: McpServers | None = None,
    mail: AgentMail | None = None,
) -> Model:
    """The model `config.spec` names. Raises ValueError for a bad spec, a missing key, or a
    user tool that cannot be loaded, saying what to fix. Tools under the `ask` policy wait for
    `approvals` (without it they are refused); `mcp_servers` (started by the caller) add theirs."""
    spec = parse_spec(config.spec)
    if spec.provider == "echo":
        return EchoModel()
    if spec.provider == "local":
        from hub.providers.local import LocalModel

        return LocalModel.from_spec(spec, config)
    from pydantic_ai.settings import ModelSettings

    from hub.providers.failures import RetryPolicy
    from hub.providers.runtime import PydanticAIModel
    from hub.providers.tools import build_tools
    from hub.tools.agent_messages import mail_toolset
    from hub.tools.builtin import builtin_toolset
    from hub.tools.policy import ToolPolicies

    model, endpoint = _pydantic_model(spec, config)
    settings: ModelSettings = {"max_retries": 0, "timeout": config.request_timeout}
    tooling = config.tooling
    return PydanticAIModel(
        str(spec),
        model,
        endpoint=endpoint,
        system_prompt=config.system_prompt,
        tools=build_tools(config.tools, builtins=config.builtin_tools),
        toolsets=[
            builtin_toolset(tooling),
            *([mail_toolset(tooling, mail)] if mail else []),
            *(mcp_servers.servers if mcp_servers else ()),
        ],
        policies=ToolPolicies.from_config(tooling),
        approvals=approvals,
        output_chars=tooling.tool_output_chars,
        settings=settings,
        retry=RetryPolicy(max_retries=config.max_retries),
        image_input=config.image_input,
    )


def _pydantic_model(spec: ModelSpec, config: ModelConfig) -> tuple[PydanticModel, Endpoint]:
    from hub.providers.failures import Endpoint

    if spec.provider == "anthropic":
        from pydantic_ai.models.anthropic import AnthropicModel
        from pydantic_ai.providers.anthropic import AnthropicProvider

        if config.anthropic_api_key is None:
            raise ValueError(f"{spec} needs an API key: set ANTHROPIC_API_KEY")
        provider = AnthropicProvider(
            api_key=config.anthropic_api_key.get_secret_value(),
            base_url=config.anthropic_base_url,
        )
        where = (
            f"the Anthropic server at {config.anthropic_base_url}"
            if config.anthropic_base_url
            else "the Anthropic API"
        )
        return AnthropicModel(spec.model, provider=provider), Endpoint(
            str(spec), where, "ANTHROPIC_API_KEY"
        )
    from pydantic_ai.models import create_async_httpx2_client
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider
    from pydantic_ai.providers.openai_compatible import OpenAICompatibleProvider

    from hub.providers.folding import fold_stream

    http = create_async_httpx2_client()
    http.event_hooks["response"].append(fold_stream)

    if spec.provider == "ollama":
        ollama = OpenAICompatibleProvider(
            "ollama", base_url=config.ollama_base_url, api_key=_NO_KEY, http_client=http
        )
        return OpenAIChatModel(spec.model, provider=ollama), Endpoint(
            str(spec),
            f"the Ollama server at {config.ollama_base_url}",
            None,
            missing_model_fix=f"run `ollama pull {spec.model}` or pick another model",
        )
    key = config.openai_api_key.get_secret_value() if config.openai_api_key else None
    if config.openai_base_url is None:
        if key is None:
            raise ValueError(
                f"{spec} needs an API key: set OPENAI_API_KEY, or OPENAI_BASE_URL for a local "
                "OpenAI-compatible server"
            )
        official = OpenAIProvider(base_url=openai_base_url(config), api_key=key, http_client=http)
        return OpenAIChatModel(spec.model, provider=official), Endpoint(
            str(spec), "the OpenAI API", "OPENAI_API_KEY", "OPENAI_BASE_URL"
        )
    base_url = openai_base_url(config)
    compatible = OpenAICompatibleProvider(
        "openai-compatible", base_url=base_url, api_key=key or _NO_KEY, http_client=http
    )
    return OpenAIChatModel(spec.model, provider=compatible), Endpoint(
        str(spec), f"the server at {base_url}", "OPENAI_API_KEY", "OPENAI_BASE_URL"
    )


def build_compactor(model: Model, config: ModelConfig) -> Compactor:
    """A compactor sized for `model`; it summarises with the model when that can."""
    spec = parse_spec(config.spec)
    window = context_window_for(spec.model, config.context_window)
    summarize = None
    if spec.provider not in ("echo", "local") and config.compaction_summary:
        from hub.providers.runtime import PydanticAIModel

        if isinstance(model, PydanticAIModel):
            summarize = model.summarize
    return BudgetCompactor(
        window, summarize=summarize, overhead_tokens=len(config.system_prompt) // 4
    )


async def check_model(model: Model) -> str | None:
    """For `agenthub doctor`: a tiny request; the error message, or None when the model answers."""
    if isinstance(model, EchoModel):
        return None
    from hub.providers.local import LocalModel
    from hub.providers.runtime import PydanticAIModel

    if isinstance(model, PydanticAIModel | LocalModel):
        return await model.check()
    return None
