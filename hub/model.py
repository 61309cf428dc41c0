"""The model seam: what AsyncAgent drives, and what every provider implements.

A model turns one turn (the user's text plus the session context) into an async stream of
parts. The agent maps parts onto agent events: text deltas open and grow an assistant message;
a tool call ends the open message and shows as tool_execution_start/end. Cancelling the stream
(`abort()`) must close the provider request, which async generators do through `aclose()`.
A provider failure is raised as `hub.errors.ModelError`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import JsonValue

from hub.approvals import Announce
from hub.attachments import TurnImage
from hub.sessions import HistoryEntry


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    tool_call_id: str
    tool_name: str
    args: JsonValue


@dataclass(frozen=True, slots=True)
class ToolCallFinished:
    tool_call_id: str
    tool_name: str
    args: JsonValue
    result: JsonValue
    is_error: bool


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Tokens a run used. `context_tokens`, when the provider reports it, is how much of the
    context window the last request and its reply took (what compaction measures);
    `cached_tokens` the part of `input_tokens` the provider read from its prompt cache."""

    input_tokens: int
    output_tokens: int
    context_tokens: int | None = None
    cached_tokens: int = 0


ModelPart = TextDelta | ToolCallStarted | ToolCallFinished | UsageReport


def _no_steering() -> list[str]:
    return []


@dataclass(frozen=True, slots=True)
class ModelTurn:
    """One turn: the user's text, and the context before it (oldest first).

    `steering` hands over messages the user wrote while this turn runs (write mode `steer`):
    a provider calls it before each model request after the first and appends what it returns
    as user messages; the agent records them in the session when the next part arrives.
    Messages nobody takes become the session's next turn.

    `announce` lets the model put events of its own on the agent's stream mid-run (a tool
    waiting for approval); the agent stamps their seq."""

    agent_id: str
    run_id: str
    text: str
    context: Sequence[HistoryEntry]
    summary: str | None = None
    steering: Callable[[], list[str]] = _no_steering
    session_key: str = "main"
    session_id: str = ""
    announce: Announce | None = None
    # Images sent with the text, for a model that sees images (`sees_images`).
    images: tuple[TurnImage, ...] = ()
    # Whose memory the turn uses (`hub.scopes.memory_scope`); None: none.
    memory_scope: str | None = None


class Model(Protocol):
    """A provider behind the agent. `name` is its spec, e.g. `echo` or `openai:gpt-4o-mini`.

    A model that takes image input has `accepts_images = True` (see `sees_images`); for the
    others the agent tells the person and sends the text only."""

    @property
    def name(self) -> str: ...

    def stream(self, turn: ModelTurn) -> AsyncGenerator[ModelPart, None]: ...


def sees_images(model: object) -> bool:
    """Whether `model` takes images with a turn (its optional `accepts_images` attribute)."""
    return getattr(model, "accepts_images", False) is True


@dataclass(frozen=True, slots=True)
class CompactionPlan:
    """Drop context entries before `first_kept_id`; `summary` stands in for them."""

    first_kept_id: str | None
    removed: int
    kept: int
    summary: str | None = None


class Compactor(Protocol):
    """Keeps the context within the model's window, asked after every completed run."""

    def reason(self, context: Sequence[HistoryEntry], usage: UsageReport | None) -> str | None:
        """Why to compact now, or None to leave the context as it is."""
        ...

    async def compact(
        self, context: Sequence[HistoryEntry], reason: str, previous_summary: str | None = None
    ) -> CompactionPlan:
        """Plan the cut. `previous_summary` (the last compaction's) stands for what was removed
        before; fold it into the new summary so it is not forgotten."""
        ...


class CompactNow:
    """A compactor asked to compact now (a chat's /compact), whatever its own measure says."""

    def __init__(self, compactor: Compactor) -> None:
        self._compactor = compactor

    def reason(self, context: Sequence[HistoryEntry], usage: UsageReport | None) -> str | None:
        return "requested"

    async def compact(
        self, context: Sequence[HistoryEntry], reason: str, previous_summary: str | None = None
    ) -> CompactionPlan:
        return await self._compactor.compact(context, reason, previous_summary)
