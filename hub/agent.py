"""AsyncAgent: one agent shared by every surface, with one conversation per session key.

- `write(text, origin, session_key=…, mode=…)` queues a turn in that session's lane
  (`hub.lanes`, all of them in a `hub.lane_set.LaneSet`): turns of one session run one at a
  time, in write order; sessions run concurrently, at most `max_concurrent_runs` at once.
  The origin travels with the run (in its `agent_start` event), so a reply is routed by the
  run that produced it, never by whatever surface wrote last.
- `subscribe(callback)` is the multi-consumer stream; `read()` the single-consumer iterator.
  A sync callback is called inline as each event is emitted; `read()` and each async callback
  have their own bounded channel (see `hub.fanout` for delivery and the overflow policy).
- A failed run emits `agent_error`; the next turn runs normally. `abort()` stops a session's
  current run, ending its open message; `close()` drains.
- Every accepted message is saved in its session before its run starts (`hub.accepted`), so a
  restart answers turns that were waiting; `hold()` keeps runs from starting until
  `release()` (start-up recovery).
- Each run is recorded by a `RunRecorder` (`hub.recorder`: seq stamping, persistence before
  announcement) and driven by `hub.runs.drive_run`; `hub.event_stream` delivers events in seq
  order to every consumer. A session answers with the model it chose (`hub.session_models`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Sequence

from hub.accepted import AcceptedMessages
from hub.attachments import TurnImage
from hub.errors import AgentClosedError, CodedError, InvalidInputError, QueueFullError
from hub.event_stream import EventStream
from hub.events import MAIN_SESSION, ReadItem
from hub.fanout import Callback, GapCallback
from hub.lane_set import LaneSet
from hub.lanes import SessionLane, WriteMode
from hub.model import CompactNow, Compactor, Model
from hub.origin import Origin
from hub.runs import RunOutcome, Turn, drive_run, new_run_id
from hub.scopes import check_session_key
from hub.session_models import SessionModels
from hub.session_registry import SessionRegistry
from hub.sessions import CompactionEntry, HistoryEntry, Session, SessionStore, validate_id

log = logging.getLogger("agenthub.agent")

DEFAULT_MAX_INPUT_CHARS = 100_000
DEFAULT_MAX_CONCURRENT_RUNS = 4

__all__ = ["AsyncAgent", "RunOutcome"]


class AsyncAgent:
    """One agent, its sessions, and the streams every surface consumes."""

    def __init__(
        self,
        agent_id: str,
        model: Model,
        store: SessionStore,
        *,
        compactor: Compactor | None = None,
        models: tuple[Model, ...] = (),
        max_input_chars: int = DEFAULT_MAX_INPUT_CHARS,
        max_queued_turns: int = 64,
        max_concurrent_runs: int = DEFAULT_MAX_CONCURRENT_RUNS,
        read_limit: int = 4096,
        subscriber_limit: int = 4096,
        loaded_sessions: int = 256,
    ) -> None:
        self.agent_id = validate_id("agent id", agent_id)
        self.compactor = compactor
        self.store = store
        self.sessions = SessionRegistry(store, agent_id, loaded=loaded_sessions)
        self.models = SessionModels(model, models, self.sessions)
        self.max_input_chars = max_input_chars
        self.last_run: RunOutcome | None = None
        self.events = EventStream(self.agent_id, self.sessions, read_limit, subscriber_limit)
        self.sessions.busy = self.session_busy
        self._max_queued = max_queued_turns
        self.accepted = AcceptedMessages(self.agent_id, self.sessions, lambda: self.events.last)
        self.lanes = LaneSet(
            self._run,
            max_concurrent_runs=max_concurrent_runs,
            record=self.accepted.record,
            mode_of=self.sessions.mode,
            on_idle=self.sessions.trim,
        )
        # Set by the hub: whose memory a session's runs use (`hub.scopes.memory_scope`).
        self.memory_scope: Callable[[str], str | None] = lambda session_key: None
        self._closed = False
        self._closing: asyncio.Future[int] | None = None

    # -- state ------------------------------------------------------------------------------

    @property
    def model(self) -> Model:
        """The agent's own model: what a session answers with until it switches."""
        return self.models.default

    @model.setter
    def model(self, model: Model) -> None:
        self.models.default = model

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def session(self) -> Session:
        """The current session of `main`, the owner's conversation."""
        return self.sessions.current(MAIN_SESSION)

    @property
    def busy(self) -> bool:
        return self.lanes.busy

    def session_busy(self, session_key: str) -> bool:
        lane = self.lanes.get(session_key)
        return lane is not None and lane.busy

    def running(self, run_id: str) -> bool:
        """Whether run `run_id` is being answered right now (in any session)."""
        return self.lanes.running(run_id)

    @property
    def queued(self) -> int:
        """Turns written but not started, across sessions (waiting for a slot included)."""
        return self.lanes.queued

    @property
    def last_seq(self) -> int:
        return self.events.last

    def history(
        self,
        *,
        limit: int | None = None,
        before: int | None = None,
        after: int | None = None,
        session_key: str = MAIN_SESSION,
    ) -> list[HistoryEntry]:
        """Entries of a key's current session, by seq range, the last `limit` of them."""
        session = self.sessions.current(session_key)
        return session.history(limit=limit, before=before, after=after)

    # -- input ------------------------------------------------------------------------------

    def write(
        self,
        text: str,
        origin: Origin | None = None,
        *,
        session_key: str = MAIN_SESSION,
        mode: WriteMode | None = None,
        hold: tuple[float, float] | None = None,
        images: tuple[TurnImage, ...] = (),
    ) -> str:
        """Queue a turn in `session_key`'s lane and return the id of the run that will answer
        it (`collect` and `steer` may join a run already queued or going). `mode` defaults to
        the session's; `hold` (idle, cap seconds) debounces a burst into one turn. Raises
        `AgentClosedError` after `close()`, `InvalidInputError` for empty,
        oversized or unencodable text (empty is fine with `images`), `QueueFullError` when too
        many turns wait."""
        if self._closed:
            raise AgentClosedError(f"agent {self.agent_id} is closed and takes no more messages")
        check_text(text, self.max_input_chars, empty_ok=bool(images))
        check_session_key(session_key)
        lane = self.lane(session_key)
        if len(lane.turns) >= self._max_queued:
            raise QueueFullError(
                f"agent {self.agent_id} already has {len(lane.turns)} messages waiting"
            )
        turn = Turn(new_run_id(), text, origin or Origin(surface="desktop"), session_key)
        turn.images = images
        self.lanes.idle.clear()
        return lane.place(turn, mode or lane.mode, hold).run_id

    def queue_first(self, session_key: str, turns: Sequence[tuple[Turn, str | None]]) -> None:
        """Queue turns recovered at start-up ahead of what `session_key` has queued, in order.
        Each comes with the session its message is saved in as accepted, or None to save it
        now (`hub.recovery`)."""
        if self._closed:
            raise AgentClosedError(f"agent {self.agent_id} is closed and takes no more messages")
        lane = self.lane(session_key)
        for turn, saved_in in turns:
            if saved_in is None:
                self.accepted.record(turn, turn, False)
            else:
                self.accepted.announce(turn, saved_in, steer=False)
        self.lanes.idle.clear()
        lane.queue_first([turn for turn, _ in turns])

    def hold(self) -> None:
        """Start no run until `release()` (writes are still taken and queued)."""
        self.lanes.opened.clear()

    def release(self) -> None:
        self.lanes.opened.set()

    def lane(self, session_key: str) -> SessionLane:
        """The run queue of `session_key` (made when it has none)."""
        return self.lanes.lane(session_key)

    # -- output -----------------------------------------------------------------------------

    def subscribe(
        self, callback: Callback, *, on_gap: GapCallback | None = None, name: str = ""
    ) -> Callable[[], None]:
        """Receive every event from now on, in order, via `callback` (`EventStream.subscribe`
        says how). Raises `AgentClosedError` after `close()`."""
        if self._closed:
            raise AgentClosedError(f"agent {self.agent_id} is closed; nothing more to receive")
        return self.events.subscribe(callback, on_gap, name)

    def read(self) -> AsyncGenerator[ReadItem, None]:
        """The single-consumer stream (`EventStream.read`); it ends when the agent closes."""
        return self.events.read()

    # -- control ----------------------------------------------------------------------------

    def abort(self, session_key: str = MAIN_SESSION) -> bool:
        """Stop the session's current run: its model stream is cancelled (or never starts),
        its open message ends marked aborted, and it ends with status `aborted`. False when
        there is no run whose model is still going."""
        lane = self.lanes.get(session_key)
        if lane is None or lane.current is None:
            return False
        return lane.current.abort()

    async def wait_idle(self) -> None:
        """Return once no turn is running or queued in any session."""
        await self.lanes.idle.wait()

    async def new_session(self, session_key: str = MAIN_SESSION) -> Session:
        """Start a fresh session under `session_key` (e.g. a chat's /new); seq keeps
        increasing across it, and the old session stays readable.

        A run in progress finishes in the session it started in; the switch happens before
        the key's next queued turn."""
        async with self.lanes.between_turns(session_key):
            session = self.sessions.new(session_key, start_seq=self.events.last)
        log.info("agent %s: new session %s for %s", self.agent_id, session.session_id, session_key)
        return session

    async def compact(self, session_key: str) -> CompactionEntry | None:
        """Compact `session_key`'s context now (a chat's /compact), between its turns: the
        new compaction entry, or None when there is nothing old enough to fold in. Raises
        `CodedError` `unavailable` for an agent without a compactor, `busy` while the
        session is answering."""
        if self.compactor is None:
            raise CodedError("this agent's model has no compaction configured", "unavailable")
        if self.session_busy(session_key):
            raise CodedError("a reply is in progress; compact once it is done", "busy")
        async with self.lanes.between_turns(session_key):
            session = self.sessions.current(session_key)
            before = session.last_compaction()
            recorder = self.events.recorder(new_run_id(), session_key)
            await recorder.compact(CompactNow(self.compactor))
        after = session.last_compaction()
        return after if after is not before else None

    async def close(self, *, grace: float = 0.0, drain: float = 5.0) -> int:
        """Stop taking writes; let runs finish for up to `grace` seconds, then abort the
        current runs and drop turns that never started (returned as a count, and logged).
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
                await asyncio.wait_for(self.lanes.idle.wait(), grace)
            except TimeoutError:
                log.warning("agent %s: run still going after %.1fs; aborting", self.agent_id, grace)
        dropped = await self.lanes.stop()
        if dropped:
            log.warning(
                "agent %s: %d queued messages never ran (saved: the next start answers them)",
                self.agent_id,
                len(dropped),
            )
        await self.accepted.close()
        self.sessions.flush()
        await self.events.close(drain)
        return len(dropped)

    # -- runs -------------------------------------------------------------------------------

    async def _run(self, turn: Turn) -> None:
        recorder = self.events.recorder(turn.run_id, turn.session_key)
        model = self.models.for_session(turn.session_key)
        scope = self.memory_scope(turn.session_key)
        self.last_run = await drive_run(turn, recorder, model, self.compactor, memory_scope=scope)


def check_text(text: str, limit: int, *, empty_ok: bool = False) -> None:
    """Refuse text no turn should carry: empty (unless `empty_ok`), over `limit` characters,
    not encodable."""
    if not text.strip() and not empty_ok:
        raise InvalidInputError("message is empty", "empty")
    if len(text) > limit:
        raise InvalidInputError(
            f"message is {len(text)} characters; the limit is {limit}",
            "too_large",
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"message is not valid Unicode text (unpaired surrogate at {exc.start})",
            "invalid_text",
        ) from None
