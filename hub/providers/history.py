"""The session context as pydantic-ai messages, and the instructions that go with it."""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import JsonValue
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelRequestPart,
    ModelResponse,
    ModelResponsePart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from hub.sessions import HistoryEntry, MessageEntry

SUMMARY_HEADING = (
    "Summary of the earlier part of this conversation (older messages were compacted):"
)


def instructions(system_prompt: str, summary: str | None) -> str:
    """The system prompt, plus the compaction summary when there is one."""
    if not summary:
        return system_prompt
    return f"{system_prompt}\n\n{SUMMARY_HEADING}\n{summary}"


def to_model_messages(context: Sequence[HistoryEntry]) -> list[ModelMessage]:
    """Messages and tool entries (oldest first) as alternating requests and responses.

    Adjacent parts of one side merge into one message, so an assistant's text and the tool call
    that followed it form one response, as the provider produced them. Images of earlier turns
    are named, not sent again."""
    builder = _Builder()
    for entry in context:
        if isinstance(entry, MessageEntry):
            if entry.role == "user":
                builder.request(UserPromptPart(_with_image_names(entry)))
            elif entry.text:
                builder.response(TextPart(entry.text))
            continue
        builder.response(
            ToolCallPart(entry.tool_name, _args(entry.args), tool_call_id=entry.tool_call_id)
        )
        builder.request(
            ToolReturnPart(
                entry.tool_name,
                entry.result,
                tool_call_id=entry.tool_call_id,
                outcome="failed" if entry.is_error else "success",
            )
        )
    return builder.finish()


class _Builder:
    def __init__(self) -> None:
        self.messages: list[ModelMessage] = []
        self._requests: list[ModelRequestPart] = []
        self._responses: list[ModelResponsePart] = []

    def request(self, part: ModelRequestPart) -> None:
        self._flush_responses()
        self._requests.append(part)

    def response(self, part: ModelResponsePart) -> None:
        self._flush_requests()
        self._responses.append(part)

    def finish(self) -> list[ModelMessage]:
        self._flush_requests()
        self._flush_responses()
        return self.messages

    def _flush_requests(self) -> None:
        if self._requests:
            self.messages.append(ModelRequest(parts=self._requests))
            self._requests = []

    def _flush_responses(self) -> None:
        if self._responses:
            self.messages.append(ModelResponse(parts=self._responses))
            self._responses = []


def _with_image_names(entry: MessageEntry) -> str:
    names = [f"[image sent earlier: {ref.name}]" for ref in entry.attachments]
    return "\n\n".join([entry.text, *names]) if entry.text else "\n\n".join(names)


def _args(args: JsonValue) -> str | dict[str, JsonValue]:
    if isinstance(args, dict):
        return args
    return args if isinstance(args, str) else json.dumps(args)
