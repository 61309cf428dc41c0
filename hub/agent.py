"""AsyncAgent: one agent shared by every surface.

- `write(text, origin)` queues a turn; turns run one at a time, in write order. The origin
  travels with the run (in its `agent_start` event), so a reply is routed by the run that
  produced it, never by whatever surface wrote last.
- `subscribe(callback)` is the multi-consumer stream; `read()` the single-consumer iterator.
  A sync callback is called inline as each event is emitted; `read()` and each async callback
  have their own bounded channel (see `hub.fanout` for delivery and the overflow policy).
- A failed run emits `agent_error` and puts a `LegacyError` on `read()`; the next turn runs
  normally. `abort()` stops the current run, ending its open message; `close()` drains.
- Persistence before announcement: a `message_end`, `tool_execution_end`, `compaction_end` or
  `agent_end` is emitted after its session entry is fsynced, so a client that sees it and asks
  for history finds it. `agent_end` is always the last event of a run, even when saving failed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field

from hub.errors import (
    AgentClosedError,
    CodedError,
    InvalidInputError,
    ModelError,
    QueueFullError,
    ReaderBusyError,
)
from hub.events import (
    AgentEnd,
    AgentError,
    AgentEvent,
    AgentStart,
    CompactionEnd,
    CompactionStart,
    LegacyError,
    MessageEnd,
    MessageStart,
    MessageUpdate,
    ReadItem,
    RunStatus,
    ToolExecutionEnd,
    ToolExecutionStart,
    now_ms,
)
from hub.fanout import Callback, EventChannel, GapCallback, Subscriber
from hub.model import (
    Compactor,
    Model,
    ModelTurn,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    UsageReport,
)
from hub.origin import Origin
from hub.sessions import (
    CompactionEntry,
    HistoryEntry,
    MessageEntry,
    RunEntry,
    Session,
    SessionEntry,
    SessionStore,
    ToolEntry,
    new_entry_id,
    validate_id,
)

log = logging.getLogger("agenthub.agent")

DEFAULT_MAX_INPUT_CHARS = 100_000


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How the last run ended, for health reports."""

    run_id: str
    status: RunStatus
    finished_at: int
    error_code: str | None = None


@dataclass(slots=True)
class _Turn:
    run_id: str
    text: str
    origin: Origin
    # Set by abort(): the model is not started, or its stream is cancelled.
    aborted: bool = False
    # The model stream has ended; abort() no longer has anything to stop.
    streamed: bool = False


@dataclass(slots=True)
class _OpenMessage:
    message_id: str
    text: str = ""


@dataclass(slots=True)
class _RunState:
    run_id: str
    message: _OpenMessage | None = None
    usage: UsageReport = field(default_factory=lambda: UsageReport(0, 0))


class AsyncAgent:
    """One agent, its session, and the streams every surface consumes."""

    def __init__(
        self,
        agent_id: str,
        model: Model,
        store: SessionStore,
        *,
        compactor: Compactor | None = None,
        max_input_chars: int = DEFAULT_MAX_INPUT_CHARS,
        max_queued_turns: int = 64,
        read_limit: int = 4096,
        subscriber_limit: int = 4096,
    ) -> None:
        self.agent_id = validate_id("agent id", agent_id)
        self.model = model
        self.compactor = compactor
        self.store = store
        self.session: Session = store.current(agent_id)
        self.max_input_chars = max_input_chars
        self.last_run: RunOutcome | None = None
        self._seq = self.session.resume_seq
        self._max_queued = max_queued_turns
        self._subscriber_limit = subscriber_limit
        self._turns: deque[_Turn] = deque()
        self._turn_ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._read = EventChannel(self.agent_id, read_limit)
        self._reader_active = False
        self._subscribers: dict[int, Subscriber] = {}
        # What `_emit` iterates: a snapshot, so a callback may (un)subscribe while it runs.
        self._fanout: tuple[Subscriber, ...] = ()
        self._next_subscriber = 0
        self._closed = False
        self._closing: asyncio.Future[int] | None = None
        # Held for a whole run, so a session switch happens between runs, never inside one.
        self._run_lock = asyncio.Lock()
        self._worker: asyncio.Task[None] | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._current: _Turn | None = None

    # -- state ------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def busy(self) -> bool:
        return self._current is not None or bool(self._turns)

    @property
    def current_run_id(self) -> str | None:
        return self._current.run_id if self._current else None

    @property
    def queued(self) -> int:
        return len(self._turns)

    @property
    def last_seq(self) -> int:
        return self._seq

    def history(
        self, *, limit: int | None = None, before: int | None = None, after: int | None = None
    ) -> list[HistoryEntry]:
        """Entries of the current session, by seq range, the last `limit` of them."""
        return self.session.history(limit=limit, before=before, after=after)

    # -- input ------------------------------------------------------------------------------

    def write(self, text: str, origin: Origin | None = None) -> str:
        """Queue a turn and return its run id. Raises `AgentClosedError` after `close()`,
        `InvalidInputError` for empty, oversized or unencodable text, `QueueFullError` when
        too many turns wait."""
        if self._closed:
            raise AgentClosedError(f"agent {self.agent_id} is closed and takes no more messages")
        self._check_text(text)
        if len(self._turns) >= self._max_queued:
            raise QueueFullError(
                f"agent {self.agent_id} already has {len(self._turns)} messages waiting"
            )
        run_id = f"r-{secrets.token_hex(6)}"
        self._turns.append(_Turn(run_id, text, origin or Origin(surface="desktop")))
        self._idle.clear()
        self._turn_ready.set()
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(
                self._work(), name=f"agent:{self.agent_id}"
            )
        return run_id

    def _check_text(self, text: str) -> None:
        if not text.strip():
            raise InvalidInputError("message is empty", "empty")
        if len(text) > self.max_input_chars:
            raise InvalidInputError(
                f"message is {len(text)} characters; the limit is {self.max_input_chars}",
                "too_large",
            )
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInputError(
                f"message is not valid Unicode text (unpaired surrogate at {exc.start})",
                "invalid_text",
            ) from None

    # -- output -----------------------------------------------------------------------------

    def subscribe(
        self, callback: Callback, *, on_gap: GapCallback | None = None, name: str = ""
    ) -> Callable[[], None]:
        """Receive every event from now on, in order, via `callback`.

        A sync callback is called inline as each event is emitted (it must not block); an
        `async def` one runs in its own task behind a bounded channel, and `on_gap` hears about
        events dropped when it falls behind (see `hub.fanout`). A callback may raise: it is
        logged and keeps receiving. Returns the unsubscribe function. Raises
        `AgentClosedError` after `close()`."""
        if self._closed:
            raise AgentClosedError(f"agent {self.agent_id} is closed; nothing more to receive")
        key = self._next_subscriber
        self._next_subscriber += 1
        subscriber = Subscriber(
            self.agent_id, callback, on_gap, self._subscriber_limit, name or f"#{key}"
        )
        self._subscribers[key] = subscriber
        self._fanout = tuple(self._subscribers.values())

        def unsubscribe() -> None:
            removed = self._subscribers.pop(key, None)
            if removed is not None:
                removed.cancel()
                self._fanout = tuple(self._subscribers.values())

        return unsubscribe

    async def read(self) -> AsyncGenerator[ReadItem, None]:
        """The single-consumer stream: every event, plus `LegacyError` after a failed run and
        `ReadGap` when the reader fell behind. Ends when the agent closes.

        A second reader while one is active raises `ReaderBusyError` on its first step. A
        reader that stops early should close the iterator (`contextlib.aclosing`) to free the
        slot at once."""
        if self._reader_active:
            raise ReaderBusyError(f"agent {self.agent_id} already has a reader")
        self._reader_active = True
        try:
            while (item := await self._read.get()) is not None:
                yield item
        finally:
            self._reader_active = False

    def _emit(self, event: AgentEvent) -> None:
        for subscriber in self._fanout:
            subscriber.offer(event)
        self._read.put(event)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # -- control ----------------------------------------------------------------------------

    def abort(self) -> bool:
        """Stop the current run: its model stream is cancelled (or never starts), its open
        message ends marked aborted, and it ends with status `aborted`. False when there is
        no run whose model is still going."""
        turn = self._current
        if turn is None or turn.aborted or turn.streamed:
            return False
        turn.aborted = True
        if self._run_task is not None:
            self._run_task.cancel()
        return True

    async def wait_idle(self) -> None:
        """Return once no turn is running or queued."""
        await self._idle.wait()

    async def new_session(self) -> Session:
        """Start a fresh session (e.g. a chat's /new); seq keeps increasing across it.

        A run in progress finishes in the session it started in; the switch happens before
        the next queued turn."""
        async with self._run_lock:
            self.session = self.store.create(self.agent_id, start_seq=self._seq)
        log.info("agent %s: new session %s", self.agent_id, self.session.session_id)
        return self.session

    async def close(self, *, grace: float = 0.0, drain: float = 5.0) -> int:
        """Stop taking writes; let runs finish for up to `grace` seconds, then abort the
        current run and drop turns that never started (returned as a count, and logged).
        Subscribers get up to `drain` seconds to take their queued events. A second call
        waits for the first to finish and returns 0."""
        if self._closing is not None:
            await asyncio.shield(self._closing)
            return 0
        self._closed = True
        self._closing = asyncio.ensure_future(self._close(grace, drain))
        return await asyncio.shield(self._closing)

    async def _close(self, grace: float, drain: float) -> int:
        if grace > 0 and self.busy:
            try:
                await asyncio.wait_for(self._idle.wait(), grace)
            except TimeoutError:
                log.warning("agent %s: run still going after %.1fs; aborting", self.agent_id, grace)
        dropped = len(self._turns)
        if dropped:
            log.warning("agent %s: %d queued messages never ran", self.agent_id, dropped)
        self._turns.clear()
        self.abort()
        if self._worker is not None:
            self._turn_ready.set()
            await self._worker
        self._read.close()
        await asyncio.gather(*(s.stop(drain) for s in self._subscribers.values()))
        self._subscribers.clear()
        self._fanout = ()
        return dropped

    # -- runs -------------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            if not self._turns:
                self._idle.set()
                if self._closed:
                    return
                self._turn_ready.clear()
                await self._turn_ready.wait()
                continue
            turn = self._turns.popleft()
            self._current = turn
            try:
                await self._run(turn)
            except Exception:
                log.exception("agent %s: run %s crashed", self.agent_id, turn.run_id)
            finally:
                self._current = None

    async def _run(self, turn: _Turn) -> None:
        async with self._run_lock:
            await self._run_locked(turn)

    async def _run_locked(self, turn: _Turn) -> None:
        run_id = turn.run_id
        self._emit(
            AgentStart(
                agent_id=self.agent_id, run_id=run_id, seq=self._next_seq(), origin=turn.origin
            )
        )
        state = _RunState(run_id)
        outcome: BaseException | None
        try:
            context = self.session.context()
            compaction = self.session.last_compaction()
            await self._user_message(turn)
            model_turn = ModelTurn(
                agent_id=self.agent_id,
                run_id=run_id,
                text=turn.text,
                context=context,
                summary=compaction.summary if compaction else None,
                session_id=self.session.session_id,
                announce=lambda build: self._emit(build(self._next_seq())),
            )
            outcome = await self._drive(turn, model_turn, state)
        except Exception as exc:
            outcome = exc
        finally:
            turn.streamed = True
        error: ModelError | None = None
        status: RunStatus = "completed"
        if isinstance(outcome, asyncio.CancelledError):
            status = "aborted"
        elif outcome is not None:
            status = "failed"
            error = _run_error(outcome, run_id)
        if state.message is not None:
            try:
                await self._end_message(state, aborted=status != "completed")
            except OSError as exc:
                status, error = "failed", error or _run_error(exc, run_id)
        if status == "completed" and self.compactor is not None:
            await self._maybe_compact(run_id, state.usage)
        if error is not None:
            self._emit(
                AgentError(
                    agent_id=self.agent_id,
                    run_id=run_id,
                    seq=self._next_seq(),
                    code=error.code,
                    message=error.message,
                    retryable=error.retryable,
                )
            )
            self._read.put(
                LegacyError(agent_id=self.agent_id, run_id=run_id, text=f"Error: {error.message}")
            )
        end = AgentEnd(
            agent_id=self.agent_id,
            run_id=run_id,
            seq=self._next_seq(),
            status=status,
            input_tokens=state.usage.input_tokens,
            output_tokens=state.usage.output_tokens,
        )
        entry = RunEntry(
            id=new_entry_id("r"),
            run_id=run_id,
            seq=end.seq,
            status=status,
            error_code=error.code if error else None,
            input_tokens=end.input_tokens,
            output_tokens=end.output_tokens,
        )
        try:
            await self._persist_then_emit(entry, end)
        except OSError:
            log.warning("agent %s: run %s ended but its end was not saved", self.agent_id, run_id)
        self.last_run = RunOutcome(run_id, status, now_ms(), error.code if error else None)

    async def _drive(
        self, turn: _Turn, model_turn: ModelTurn, state: _RunState
    ) -> BaseException | None:
        """Run the model stream as its own task (what `abort()` cancels); return how it
        ended: None, the `CancelledError` of an abort, or the exception it raised."""
        if turn.aborted:
            return asyncio.CancelledError()
        task = asyncio.get_running_loop().create_task(self._stream(model_turn, state))
        self._run_task = task
        try:
            # wait() rather than await: abort() cancels the stream task, never this one.
            await asyncio.wait({task})
        finally:
            self._run_task = None
            task.cancel()
        if task.cancelled():
            return asyncio.CancelledError()
        return task.exception()

    async def _persist_then_emit(self, entry: SessionEntry, event: AgentEvent) -> None:
        """Save `entry`, then emit `event`; the event goes out even when saving fails."""
        try:
            await self.session.append(entry)
        finally:
            self._emit(event)

    async def _user_message(self, turn: _Turn) -> None:
        message_id = new_entry_id("m")
        start = MessageStart(
            agent_id=self.agent_id,
            run_id=turn.run_id,
            seq=self._next_seq(),
            message_id=message_id,
            role="user",
        )
        self._emit(start)
        end = MessageEnd(
            agent_id=self.agent_id,
            run_id=turn.run_id,
            seq=self._next_seq(),
            message_id=message_id,
            role="user",
            text=turn.text,
        )
        entry = MessageEntry(
            id=message_id, run_id=turn.run_id, seq=end.seq, role="user", text=turn.text
        )
        await self._persist_then_emit(entry, end)

    async def _stream(self, turn: ModelTurn, state: _RunState) -> None:
        async with aclosing(self.model.stream(turn)) as stream:
            async for part in stream:
                if isinstance(part, TextDelta):
                    self._text(state, part.text)
                elif isinstance(part, ToolCallStarted):
                    if state.message is not None:
                        await self._end_message(state, aborted=False)
                    self._emit(
                        ToolExecutionStart(
                            agent_id=self.agent_id,
                            run_id=state.run_id,
                            seq=self._next_seq(),
                            tool_call_id=part.tool_call_id,
                            tool_name=part.tool_name,
                            args=part.args,
                        )
                    )
                elif isinstance(part, ToolCallFinished):
                    await self._tool_end(state, part)
                else:
                    state.usage = part

    def _text(self, state: _RunState, delta: str) -> None:
        if not delta:
            return
        if state.message is None:
            state.message = _OpenMessage(new_entry_id("m"))
            self._emit(
                MessageStart(
                    agent_id=self.agent_id,
                    run_id=state.run_id,
                    seq=self._next_seq(),
                    message_id=state.message.message_id,
                    role="assistant",
                )
            )
        message = state.message
        message.text += delta
        self._emit(
            MessageUpdate(
                agent_id=self.agent_id,
                run_id=state.run_id,
                seq=self._next_seq(),
                message_id=message.message_id,
                role="assistant",
                text=message.text,
                delta=delta,
            )
        )

    async def _tool_end(self, state: _RunState, part: ToolCallFinished) -> None:
        end = ToolExecutionEnd(
            agent_id=self.agent_id,
            run_id=state.run_id,
            seq=self._next_seq(),
            tool_call_id=part.tool_call_id,
            tool_name=part.tool_name,
            args=part.args,
            result=part.result,
            is_error=part.is_error,
        )
        entry = ToolEntry(
            id=new_entry_id("t"),
            run_id=state.run_id,
            seq=end.seq,
            tool_call_id=part.tool_call_id,
            tool_name=part.tool_name,
            args=part.args,
            result=part.result,
            is_error=part.is_error,
        )
        await self._persist_then_emit(entry, end)

    async def _end_message(self, state: _RunState, *, aborted: bool) -> None:
        message, state.message = state.message, None
        assert message is not None
        end = MessageEnd(
            agent_id=self.agent_id,
            run_id=state.run_id,
            seq=self._next_seq(),
            message_id=message.message_id,
            role="assistant",
            text=message.text,
            aborted=aborted,
        )
        entry = MessageEntry(
            id=message.message_id,
            run_id=state.run_id,
            seq=end.seq,
            role="assistant",
            text=message.text,
            aborted=aborted,
        )
        await self._persist_then_emit(entry, end)

    async def _maybe_compact(self, run_id: str, usage: UsageReport) -> None:
        assert self.compactor is not None
        context = self.session.context()
        reason = self.compactor.reason(context, usage)
        if reason is None:
            return
        self._emit(
            CompactionStart(
                agent_id=self.agent_id, run_id=run_id, seq=self._next_seq(), reason=reason
            )
        )
        removed = kept = 0
        last = self.session.last_compaction()
        previous = last.summary if last is not None else None
        try:
            plan = await self.compactor.compact(context, reason, previous_summary=previous)
            removed, kept = plan.removed, plan.kept
        except Exception:
            log.exception("agent %s: compaction failed; context left as it was", self.agent_id)
            plan = None
        end = CompactionEnd(
            agent_id=self.agent_id,
            run_id=run_id,
            seq=self._next_seq(),
            reason=reason,
            removed=removed,
            kept=kept,
        )
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


def _run_error(exc: BaseException, run_id: str) -> ModelError:
    """What a client is told about a failed run: a `ModelError` as it is, a failure to save as
    `storage`, anything else as `internal` (and logged with its traceback)."""
    if isinstance(exc, ModelError):
        return exc
    if isinstance(exc, OSError):
        return ModelError("storage", f"could not save the conversation ({exc})", retryable=True)
    if isinstance(exc, CodedError):
        return ModelError(exc.code, str(exc))
    log.error("run %s failed: %s: %s", run_id, type(exc).__name__, exc, exc_info=exc)
    return ModelError("internal", f"the agent failed unexpectedly ({type(exc).__name__}: {exc})")
