"""RunRecorder: turns what happens in one run into stamped events and session entries.

Every event of a run is stamped here with its agent, run, session key and the agent's next
`seq`. The session entry behind an event (`message_end`, `tool_execution_end`,
`compaction_end`, `agent_end`) is derived from that event and fsynced **before** the event is
emitted, so a client that sees it and asks for history finds it. The event still goes out
when saving fails (the run then fails with code `storage`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

from pydantic import JsonValue

from hub.attachments import AttachmentRef
from hub.errors import ModelError
from hub.events import (
    AgentEnd,
    AgentError,
    AgentEvent,
    AgentStart,
    ApprovalResolved,
    CompactionEnd,
    CompactionStart,
    MessageEnd,
    MessageStart,
    MessageUpdate,
    RunStatus,
    ToolExecutionEnd,
    ToolExecutionStart,
)
from hub.model import Compactor, ToolCallFinished, ToolCallStarted, UsageReport
from hub.origin import Origin
from hub.sessions import (
    CompactionEntry,
    MessageEntry,
    RunEntry,
    Session,
    SessionEntry,
    ToolEntry,
    new_entry_id,
)

log = logging.getLogger("agenthub.agent")

Emit = Callable[[AgentEvent], None]


class _Stamp(TypedDict):
    agent_id: str
    run_id: str
    session_key: str
    seq: int


@dataclass(frozen=True, slots=True)
class Unanswered:
    """An approval a run was still waiting for when the hub stopped, and the tool call that
    waited for it (None when unknown)."""

    approval_id: str
    tool: str
    args: JsonValue
    tool_call_id: str | None


@dataclass(slots=True)
class _OpenMessage:
    message_id: str
    text: str = ""


class RunRecorder:
    """Records one run of one agent into `session`, announcing each step through `emit`."""

    def __init__(
        self,
        *,
        agent_id: str,
        run_id: str,
        session_key: str,
        session: Session,
        emit: Emit,
        next_seq: Callable[[], int],
    ) -> None:
        self.agent_id = agent_id
        self.run_id = run_id
        self.session_key = session_key
        self.session = session
        self.usage = UsageReport(0, 0)
        self._emit = emit
        self._next_seq = next_seq
        self._message: _OpenMessage | None = None

    @property
    def message_open(self) -> bool:
        return self._message is not None

    def _stamp(self) -> _Stamp:
        return _Stamp(
            agent_id=self.agent_id,
            run_id=self.run_id,
            session_key=self.session_key,
            seq=self._next_seq(),
        )

    async def _persist_then_emit(self, entry: SessionEntry, event: AgentEvent) -> None:
        """Save `entry`, then emit `event`; the event goes out even when saving fails."""
        try:
            await self.session.append(entry)
        finally:
            self._emit(event)

    # -- steps of a run, in the order they happen ------------------------------------------

    def announce(self, build: Callable[[int], AgentEvent]) -> None:
        """Emit an event the model built mid-run (a tool waiting for approval), given its seq."""
        self._emit(build(self._next_seq()))

    def start(self, origin: Origin, model: str) -> None:
        self._emit(AgentStart(**self._stamp(), origin=origin, model=model))

    async def user_message(self, text: str, attachments: tuple[AttachmentRef, ...] = ()) -> None:
        message_id = new_entry_id("m")
        self._emit(MessageStart(**self._stamp(), message_id=message_id, role="user"))
        end = MessageEnd(**self._stamp(), message_id=message_id, role="user", text=text)
        entry = MessageEntry(
            id=message_id,
            run_id=self.run_id,
            seq=end.seq,
            role="user",
            text=text,
            attachments=attachments,
        )
        await self._persist_then_emit(entry, end)

    def text(self, delta: str) -> None:
        """The assistant wrote `delta`: open a message if none is, then grow it."""
        if not delta:
            return
        delta = encodable(delta)
        if self._message is None:
            self._message = _OpenMessage(new_entry_id("m"))
            self._emit(
                MessageStart(**self._stamp(), message_id=self._message.message_id, role="assistant")
            )
        message = self._message
        message.text += delta
        self._emit(
            MessageUpdate(
                **self._stamp(),
                message_id=message.message_id,
                role="assistant",
                text=message.text,
                delta=delta,
            )
        )

    async def end_message(self, *, aborted: bool) -> None:
        message, self._message = self._message, None
        if message is None:
            return
        end = MessageEnd(
            **self._stamp(),
            message_id=message.message_id,
            role="assistant",
            text=message.text,
            aborted=aborted,
        )
        entry = MessageEntry(
            id=message.message_id,
            run_id=self.run_id,
            seq=end.seq,
            role="assistant",
            text=message.text,
            aborted=aborted,
        )
        await self._persist_then_emit(entry, end)

    async def tool_start(self, part: ToolCallStarted) -> None:
        """A tool call ends the open assistant message, then shows as started."""
        await self.end_message(aborted=False)
        self._emit(
            ToolExecutionStart(
                **self._stamp(),
                tool_call_id=part.tool_call_id,
                tool_name=part.tool_name,
                args=part.args,
            )
        )

    async def tool_end(self, part: ToolCallFinished) -> None:
        end = ToolExecutionEnd(
            **self._stamp(),
            tool_call_id=part.tool_call_id,
            tool_name=part.tool_name,
            args=part.args,
            result=part.result,
            is_error=part.is_error,
        )
        entry = ToolEntry(
            id=new_entry_id("t"),
            run_id=self.run_id,
            seq=end.seq,
            tool_call_id=part.tool_call_id,
            tool_name=part.tool_name,
            args=part.args,
            result=part.result,
            is_error=part.is_error,
        )
        await self._persist_then_emit(entry, end)

    async def compact(self, compactor: Compactor) -> None:
        """Ask `compactor` whether to shorten the context, and record what it did."""
        context = self.session.context()
        reason = compactor.reason(context, self.usage)
        if reason is None:
            return
        self._emit(CompactionStart(**self._stamp(), reason=reason))
        last = self.session.last_compaction()
        previous = last.summary if last is not None else None
        try:
            plan = await compactor.compact(context, reason, previous_summary=previous)
        except Exception:
            log.exception("agent %s: compaction failed; context left as it was", self.agent_id)
            plan = None
        removed, kept = (plan.removed, plan.kept) if plan is not None else (0, 0)
        end = CompactionEnd(**self._stamp(), reason=reason, removed=removed, kept=kept)
        if plan is None or not plan.removed:
            self._emit(end)
            return
        entry = CompactionEntry(
            id=new_entry_id("c"),
            seq=end.seq,
            first_kept_id=plan.first_kept_id,
            removed=plan.removed,
            kept=plan.kept,
            reason=reason,
            # Without a new summary the previous one still stands for what came before.
            summary=plan.summary if plan.summary is not None else previous,
        )
        try:
            await self._persist_then_emit(entry, end)
        except OSError:
            log.warning("agent %s: compaction was not saved; context unchanged", self.agent_id)

    async def deny_unanswered(self, approval: Unanswered, by: str) -> None:
        """Resolve an approval nobody answered before the hub stopped as denied `by`, and
        record its tool call's refusal, as a run denied while it waited would have."""
        self._emit(
            ApprovalResolved(
                **self._stamp(), approval_id=approval.approval_id, decision="denied", by=by
            )
        )
        if approval.tool_call_id is not None:
            refusal = f"ToolDeniedError: {approval.tool} was not run: denied by {by}"
            await self.tool_end(
                ToolCallFinished(
                    approval.tool_call_id, approval.tool, approval.args, refusal, is_error=True
                )
            )

    def error(self, error: ModelError) -> None:
        self._emit(
            AgentError(
                **self._stamp(),
                code=error.code,
                message=error.message,
                retryable=error.retryable,
            )
        )

    async def finish(self, status: RunStatus, error_code: str | None) -> None:
        """The run's last event, `agent_end`, after its `run` entry (saved if possible)."""
        end = AgentEnd(
            **self._stamp(),
            status=status,
            input_tokens=self.usage.input_tokens,
            output_tokens=self.usage.output_tokens,
            cached_tokens=self.usage.cached_tokens,
        )
        entry = RunEntry(
            id=new_entry_id("r"),
            run_id=self.run_id,
            seq=end.seq,
            status=status,
            error_code=error_code,
            input_tokens=end.input_tokens,
            output_tokens=end.output_tokens,
            cached_tokens=end.cached_tokens,
        )
        try:
            await self._persist_then_emit(entry, end)
        except OSError:
            log.warning(
                "agent %s: run %s ended but its end was not saved", self.agent_id, self.run_id
            )


def encodable(text: str) -> str:
    """`text` with each lone surrogate (which no JSON line or client could carry, e.g. from a
    broken model stream) replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text
