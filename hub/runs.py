"""One run, start to end: the turn it serves and the driver of its model stream.

`drive_run` is the sequence every run follows: `agent_start`, the user's message, the model's
stream (its own task, which `Turn.abort()` cancels), the open message ended, compaction after a
completed run, `agent_error` when it failed, and always `agent_end` last. What each step emits
and saves is the `RunRecorder`'s business.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from contextlib import aclosing
from dataclasses import dataclass, field

from hub.attachments import TurnImage, model_input
from hub.errors import CodedError, ModelError
from hub.events import RunStatus, now_ms
from hub.model import (
    Compactor,
    Model,
    ModelTurn,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    sees_images,
)
from hub.origin import Origin
from hub.recorder import RunRecorder
from hub.wire import WireModel

log = logging.getLogger("agenthub.agent")


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a run ended, for health reports."""

    run_id: str
    status: RunStatus
    finished_at: int
    error_code: str | None = None


def new_run_id() -> str:
    return f"r-{secrets.token_hex(6)}"


class Accepted(WireModel):
    """A message accepted for run `run_id`, saved in session `session_id` of `session_key`;
    `steer`: handed to a run already going."""

    run_id: str
    agent_id: str
    session_key: str
    session_id: str
    steer: bool = False


@dataclass(slots=True)
class Turn:
    """A written message waiting for, or being answered by, a run."""

    run_id: str
    text: str
    origin: Origin
    session_key: str
    # Set by abort(): the model is not started, or its stream is cancelled.
    aborted: bool = False
    # The model stream has ended; abort() no longer has anything to stop.
    streamed: bool = False
    # Debounce (`hub.lanes`): the loop time before which the turn waits for more messages,
    # and the latest it may be pushed to.
    ready_at: float = 0.0
    ready_cap: float = 0.0
    # Messages for the model's next step (mode `steer`), and those it took but that are not
    # recorded yet.
    steering: list[str] = field(default_factory=list)
    steered: list[str] = field(default_factory=list)
    # Images sent with the text (`hub.attachments`).
    images: tuple[TurnImage, ...] = ()
    # Saving the accepted entries of the messages this turn carries (`hub.lanes`).
    recording: list[asyncio.Task[None]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    def abort(self) -> bool:
        """Stop the model stream (or keep it from starting). False when it already ended."""
        if self.aborted or self.streamed:
            return False
        self.aborted = True
        if self._task is not None:
            self._task.cancel()
        return True

    def leftover(self) -> Turn:
        """A new turn for the steering messages the model never took."""
        text, self.steering = "\n\n".join(self.steering), []
        return Turn(new_run_id(), text, self.origin, self.session_key)

    async def recorded(self) -> None:
        """Wait until this turn's messages are saved as accepted (they precede its run)."""
        if self.recording:
            await asyncio.wait(self.recording)

    def take_steering(self) -> list[str]:
        taken, self.steering = self.steering, []
        self.steered.extend(taken)
        return list(taken)


async def drive_run(
    turn: Turn,
    recorder: RunRecorder,
    model: Model,
    compactor: Compactor | None,
    *,
    memory_scope: str | None = None,
) -> RunOutcome:
    """Run `turn` to its end, with `memory_scope`'s notes; never raises (a failure becomes the
    run's `agent_error`)."""
    await turn.recorded()
    recorder.start(turn.origin, model.name)
    session = recorder.session
    outcome: BaseException | None
    saving: asyncio.Task[None] | None = None
    try:
        context = session.context()
        compaction = session.last_compaction()
        replay = turn.origin.replay_of
        if replay is None:
            # Saved (fsync) while the model request goes out: the reply's first part waits
            # for it, so the file and the events keep their order.
            attached = tuple(image.ref for image in turn.images)
            saving = asyncio.create_task(recorder.user_message(turn.text, attached))
        else:
            # Answering an interrupted run's message again (`hub.recovery`): the message is
            # in the session already; the model gets it once, as this turn's text.
            context = [e for e in context if e.run_id != replay]
        text, images, notice = model_input(turn.text, turn.images, sees_images(model))
        if notice:
            if saving is not None:
                await saving  # the notice follows the user's message
            recorder.text(notice)
        model_turn = ModelTurn(
            agent_id=recorder.agent_id,
            run_id=turn.run_id,
            text=text,
            images=images,
            context=context,
            summary=compaction.summary if compaction else None,
            steering=turn.take_steering,
            session_key=turn.session_key,
            session_id=session.session_id,
            announce=recorder.announce,
            memory_scope=memory_scope,
        )
        outcome = await _drive(turn, model_turn, recorder, model, saving)
        if saving is not None:
            await saving
    except Exception as exc:
        outcome = exc
    finally:
        turn.streamed = True
    error: ModelError | None = None
    status: RunStatus = "completed"
    if isinstance(outcome, asyncio.CancelledError):
        status = "aborted"
    elif outcome is not None:
        status, error = "failed", run_error(outcome, turn.run_id)
    try:
        await recorder.end_message(aborted=status != "completed")
    except Exception as exc:  # saving failed: the run still ends, as failed
        log.exception("run %s: its reply could not be saved", turn.run_id)
        status, error = "failed", error or run_error(exc, turn.run_id)
    if status == "completed" and compactor is not None:
        await recorder.compact(compactor)
    if error is not None:
        recorder.error(error)
    code = error.code if error else None
    await recorder.finish(status, code)
    return RunOutcome(turn.run_id, status, now_ms(), code)


async def _drive(
    turn: Turn,
    model_turn: ModelTurn,
    recorder: RunRecorder,
    model: Model,
    saving: asyncio.Task[None] | None,
) -> BaseException | None:
    """Run the model stream as its own task (what `abort()` cancels); return how it ended:
    None, the `CancelledError` of an abort, or the exception it raised."""
    if turn.aborted:
        return asyncio.CancelledError()
    task = asyncio.get_running_loop().create_task(
        _stream(turn, model_turn, recorder, model, saving)
    )
    turn._task = task
    try:
        # wait() rather than await: abort() cancels the stream task, never this one.
        await asyncio.wait({task})
    finally:
        turn._task = None
        task.cancel()
    if task.cancelled():
        return asyncio.CancelledError()
    return task.exception()


async def _stream(
    turn: Turn,
    model_turn: ModelTurn,
    recorder: RunRecorder,
    model: Model,
    saving: asyncio.Task[None] | None,
) -> None:
    async with aclosing(model.stream(model_turn)) as stream:
        async for part in stream:
            if saving is not None:
                # Shielded: an abort stops the stream, never the saving of the user's message.
                await asyncio.shield(saving)
                saving = None
            while turn.steered:
                # The model took these at its last step: they precede what it says next.
                await recorder.end_message(aborted=False)
                await recorder.user_message(turn.steered.pop(0))
            if isinstance(part, TextDelta):
                recorder.text(part.text)
            elif isinstance(part, ToolCallStarted):
                await recorder.tool_start(part)
            elif isinstance(part, ToolCallFinished):
                await recorder.tool_end(part)
            else:
                recorder.usage = part
    while turn.steered:
        await recorder.end_message(aborted=False)
        await recorder.user_message(turn.steered.pop(0))


def run_error(exc: BaseException, run_id: str) -> ModelError:
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
