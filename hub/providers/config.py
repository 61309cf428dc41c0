"""`ModelConfig`: what the model runtime needs, built by the composition root from settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from hub.tools.config import ToolsConfig

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant reached from a desktop app, a web page and chat apps. "
    "Answer concisely; use the tools you have when they help."
)
OLLAMA_BASE_URL = "http://127.0.0.1:11434/v1"


class ModelConfig(BaseModel):
    """Which model runs and how. Secrets stay `SecretStr` so they never print by accident."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    spec: str | None = Field(
        default=None, description="`echo`, `openai:<model>`, `anthropic:<model>`, `ollama:<model>`"
    )
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = Field(
        default=None, description="any OpenAI-compatible server; None means api.openai.com"
    )
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = Field(
        default=None, description="an Anthropic Messages API server; None means api.anthropic.com"
    )
    ollama_base_url: str = OLLAMA_BASE_URL
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    context_window: int | None = Field(
        default=None, gt=0, description="tokens; None picks a default for the model family"
    )
    image_input: bool | None = Field(
        default=None,
        description="whether the model sees images; None: what pydantic-ai's model profile says",
    )
    tools: list[str] = Field(
        default_factory=list, description='user tools as import paths, "pkg.mod:func"'
    )
    builtin_tools: bool = Field(default=True, description="current time and the calculator")
    tooling: ToolsConfig = Field(
        default_factory=ToolsConfig,
        description="web fetch, workspace, shell, MCP servers and the tool policies",
    )
    request_timeout: float = Field(
        default=60.0, gt=0, description="seconds to wait for a connection or the next chunk"
    )
    max_retries: int = Field(
        default=2, ge=0, le=10, description="retries of transient failures before the first token"
    )
    compaction_summary: bool = Field(
        default=True, description="ask the model to summarise what compaction removes"
    )
