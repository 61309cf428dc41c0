"""Model specs (`provider:model`): parsing, and the start-up line that says which model runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hub.providers.config import ModelConfig

Provider = Literal["echo", "openai", "anthropic", "ollama", "local"]

VALID_FORMS = "echo, openai:<model>, anthropic:<model>, ollama:<model>, local[:PATH.gguf]"
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
HOW_TO_PICK = (
    "pick a real one with AGENTHUB_MODEL (or --model), e.g. openai:gpt-4o-mini (needs "
    "OPENAI_API_KEY), anthropic:claude-sonnet-4-6 (needs ANTHROPIC_API_KEY), ollama:llama3.2 "
    "(a local Ollama server), or openai:<model> with OPENAI_BASE_URL for any OpenAI-compatible "
    "server"
)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A parsed spec. `model` is the provider's model name, or the GGUF path for `local`."""

    provider: Provider
    model: str = ""

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}" if self.model else self.provider


def parse_spec(spec: str | None) -> ModelSpec:
    """Parse a spec; None or blank means `echo`. Raises ValueError naming the valid forms."""
    text = (spec or "echo").strip()
    provider, _, model = text.partition(":")
    provider, model = provider.strip().lower(), model.strip()
    if provider == "echo" and not model:
        return ModelSpec("echo")
    if provider == "local":
        if model and not model.endswith(".gguf"):
            raise ValueError(f"model spec {text!r}: local takes a path to a .gguf file")
        return ModelSpec("local", model)
    if provider in ("openai", "anthropic", "ollama"):
        if not model:
            raise ValueError(f"model spec {text!r} names no model: use {provider}:<model>")
        return ModelSpec(provider, model)  # type: ignore[arg-type]
    raise ValueError(f"unknown model spec {text!r}: use one of {VALID_FORMS}")


def openai_base_url(config: ModelConfig) -> str:
    return (config.openai_base_url or OPENAI_DEFAULT_BASE_URL).rstrip("/")


def describe_model(config: ModelConfig) -> str:
    """Which model runs and where, and (for echo) how to pick a real one: the text after
    "model: " on the start-up banner and in `doctor`. Never shows a key, only whether one is set."""
    spec = parse_spec(config.spec)
    if spec.provider == "echo":
        if config.spec is None or not config.spec.strip():
            return f"echo (no model configured, replies repeat your text); {HOW_TO_PICK}"
        return "echo (replies repeat your text)"
    if spec.provider == "openai":
        key = "key set" if config.openai_api_key else "no OPENAI_API_KEY"
        return f"{spec} via {openai_base_url(config)} ({key})"
    if spec.provider == "anthropic":
        key = "key set" if config.anthropic_api_key else "no ANTHROPIC_API_KEY"
        return f"{spec} via Anthropic ({key})"
    if spec.provider == "ollama":
        return f"{spec} via Ollama at {config.ollama_base_url}"
    return f"{spec} (in-process llama.cpp)"
