"""`PydanticAIModel`: the hub's model seam on top of a pydantic-ai agent.

One turn is one `Agent.iter()` run over the session context. Its stream maps onto model parts:
text deltas become `TextDelta`; each function tool call becomes `ToolCallStarted` and, once it
ran, `ToolCallFinished`; the run's usage ends the stream as `UsageReport`. Messages steered into
the turn (write mode `steer`) join each model request after the first as user prompts. Provider
failures leave as `ModelError` (see `failures`), after `RetryingModel` retried the transient ones.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import Any

from pydantic import JsonValue
from pydantic_ai import Agent, Tool
from pydantic_ai.exceptions import ModelAPIError, OutputTokenLimitExceeded
from pydantic_ai.messages import (
    BinaryContent,
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    ModelRequest,
    ModelResponse,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ToolCallPart,
    UserContent,
    UserPromptPart,
)
from pydantic_ai.models import Model as PydanticModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.toolsets import AbstractToolset, CombinedToolset, FunctionToolset
from pydantic_core import to_jsonable_python

from hub.approvals import Approvals, CallContext
from hub.errors import ModelError
from hub.model import (
    ModelPart,
    ModelTurn,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    UsageReport,
)
from hub.providers.failures import Endpoint, RetryPolicy, to_model_error
from hub.providers.history import instructions, to_model_messages
from hub.providers.retrying import RetryingModel
from hub.sessions import HistoryEntry, entries_text
from hub.tools.gate import PolicyGate
from hub.tools.policy import ToolPolicies

log = logging.getLogger("agenthub.providers")

SUMMARY_INSTRUCTIONS = (
    "Summarise the conversation below for your own later reference: keep facts, names, numbers, "
    "decisions and open questions; drop pleasantries. Write at most a few short paragraphs."
)


class PydanticAIModel:
    """A hub `Model` backed by any pydantic-ai model (OpenAI, Anthropic, test models, ...)."""

    def __init__(
        self,
        name: str,
        model: PydanticModel,
        *,
        endpoint: Endpoint,
        system_prompt: str,
        tools: Sequence[Tool[Any]] = (),
        toolsets: Sequence[AbstractToolset[CallContext]] = (),
        policies: ToolPolicies | None = None,
        approvals: Approvals | None = None,
        output_chars: int = 100_000,
        settings: ModelSettings | None = None,
        retry: RetryPolicy | None = None,
        image_input: bool | None = None,
    ) -> None:
        self._name = name
        # Whether turns may carry images: the configured switch, else the provider's model
        # profile (which says yes unless the adapter or model family is known not to).
        self.accepts_images = (
            image_input
            if image_input is not None
            else model.profile.get("supports_image_input", True) is not False
        )
        self.endpoint = endpoint
        self.system_prompt = system_prompt
        self.settings = settings
        self.model = RetryingModel(model, retry or RetryPolicy(), endpoint)
        # Every tool, whatever offers it, passes the one policy gate.
        self.gate = PolicyGate(
            _combined([FunctionToolset(list(tools)), *toolsets]),
            policies=policies or ToolPolicies({}),
            approvals=approvals,
            output_chars=output_chars,
        )
        self._agent: Agent[CallContext, str] = Agent(
            self.model,
            deps_type=CallContext,
            toolsets=[self.gate],
            name="agenthub",
        )

    @property
    def name(self) -> str:
        return self._name

    async def stream(self, turn: ModelTurn) -> AsyncGenerator[ModelPart, None]:
        attempt = 0
        while True:
            shown = False
            try:
                async with aclosing(self._run(turn)) as parts:
                    async for part in parts:
                        shown = True
                        yield part
                return
            except ModelError:
                raise
            except Exception as exc:
                error = to_model_error(exc, self.endpoint)
                # Opening a request is retried by RetryingModel; this covers a stream that broke
                # off before it showed anything, which is just as safe to send again.
                attempt += 1
                delay = None
                if not shown and error.code == "stream_cut" and isinstance(exc, ModelAPIError):
                    delay = self.model.policy.delay(exc, error, attempt)
                if delay is None:
                    raise error from exc
                log.warning("%s: stream cut before any output; retry %d", self.name, attempt)
                await asyncio.sleep(delay)

    async def _run(self, turn: ModelTurn) -> AsyncGenerator[ModelPart, None]:
        calls: dict[str, JsonValue] = {}
        async with self._agent.iter(
            _user_prompt(turn),
            message_history=to_model_messages(turn.context) or None,
            instructions=instructions(self.system_prompt, turn.summary),
            model_settings=self.settings,
            deps=CallContext(
                agent_id=turn.agent_id,
                run_id=turn.run_id,
                session_key=turn.session_key,
                session_id=turn.session_id,
                announce=turn.announce,
                memory_scope=turn.memory_scope,
            ),
        ) as run:
            requests = 0
            async for node in run:
                if Agent.is_model_request_node(node):
                    requests += 1
                    if requests > 1:
                        _steer(node.request, turn.steering())
                    async with node.stream(run.ctx) as events:
                        async for event in events:
                            if text := _text_of(event):
                                yield TextDelta(text)
                elif Agent.is_call_tools_node(node):
                    async with node.stream(run.ctx) as events:
                        async for event in events:
                            if isinstance(event, FunctionToolCallEvent):
                                call = event.part
                                calls[call.tool_call_id] = _args(call)
                                yield ToolCallStarted(
                                    call.tool_call_id,
                                    self.gate.display_name(call.tool_name),
                                    calls[call.tool_call_id],
                                )
                            elif isinstance(event, FunctionToolResultEvent):
                                result = event.part
                                yield ToolCallFinished(
                                    result.tool_call_id,
                                    self.gate.display_name(result.tool_name),
                                    calls.get(result.tool_call_id),
                                    _jsonable(result.content),
                                    is_error=result.outcome != "success",
                                )
            usage = run.usage
            last = _last_response(run.all_messages())
        yield UsageReport(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_tokens=usage.cache_read_tokens,
            context_tokens=(
                last.usage.input_tokens + last.usage.output_tokens
                if last is not None and last.usage.input_tokens
                else None
            ),
        )

    async def summarize(
        self, entries: Sequence[HistoryEntry], max_tokens: int, previous: str | None = None
    ) -> str:
        """A short summary of `entries` (after the `previous` one), by this model."""
        agent: Agent[None, str] = Agent(self.model, instructions=SUMMARY_INSTRUCTIONS)
        settings: ModelSettings = {**(self.settings or {}), "max_tokens": max_tokens}
        transcript = entries_text(entries)
        if previous:
            transcript = f"(Summary of what came before: {previous})\n{transcript}"
        try:
            result = await agent.run(transcript, model_settings=settings)
        except Exception as exc:
            raise to_model_error(exc, self.endpoint) from exc
        return result.output.strip()

    async def check(self) -> str | None:
        """A tiny request to see the model answers; the error message, or None when it does."""
        agent: Agent[None, str] = Agent(self.model)
        settings: ModelSettings = {**(self.settings or {}), "max_tokens": 16}
        try:
            await agent.run("Reply with OK.", model_settings=settings)
        except OutputTokenLimitExceeded:
            # It answered, only past the tiny limit (a reasoning model thinks first): it works.
            return None
        except Exception as exc:
            error = to_model_error(exc, self.endpoint)
            return f"{error.code}: {error.message}"
        return None


def _combined(toolsets: Sequence[AbstractToolset[CallContext]]) -> AbstractToolset[CallContext]:
    """`toolsets` as one, leaving out function toolsets with no tools: pydantic-ai runs each
    step's calls into a combined toolset as one task per member, a cost on every model request."""
    kept = [t for t in toolsets if not isinstance(t, FunctionToolset) or t.tools]
    return kept[0] if len(kept) == 1 else CombinedToolset(kept)


def _user_prompt(turn: ModelTurn) -> str | list[UserContent]:
    """The turn's text, with its images as image parts when it has any."""
    if not turn.images:
        return turn.text
    parts: list[UserContent] = [turn.text] if turn.text.strip() else []
    parts += [BinaryContent(data=i.data, media_type=i.ref.media_type) for i in turn.images]
    return parts


def _steer(request: ModelRequest, texts: list[str]) -> None:
    """Add messages the user wrote meanwhile to `request` (before it is sent): after the tool
    results it carries, so the model reads them as the user's latest words."""
    if texts:
        request.parts = [*request.parts, *(UserPromptPart(text) for text in texts)]


def _text_of(event: object) -> str:
    if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
        return event.part.content
    if isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
        return event.delta.content_delta
    return ""


def _args(part: ToolCallPart) -> JsonValue:
    if isinstance(part.args, str):
        try:
            parsed: JsonValue = json.loads(part.args) if part.args.strip() else {}
        except ValueError:
            return part.args
        return parsed
    return _jsonable(part.args)


def _last_response(messages: Sequence[object]) -> ModelResponse | None:
    return next((m for m in reversed(messages) if isinstance(m, ModelResponse)), None)


def _jsonable(value: object) -> JsonValue:
    result: JsonValue = to_jsonable_python(value, fallback=str)
    return result
