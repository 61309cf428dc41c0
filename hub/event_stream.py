"""EventStream: what one agent emits, from the run that records it to every consumer.

Each run's `RunRecorder` stamps its events with the agent's next seq; `hub.sequence` lets them
out in seq order, each announced to the session registry and fanned out (`hub.fanout`) to the
single `read()` reader and every subscriber.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable

from hub.events import AgentEvent, ReadItem
from hub.fanout import Broadcast, Callback, GapCallback
from hub.recorder import RunRecorder
from hub.sequence import EventSequence
from hub.session_registry import SessionRegistry


class EventStream:
    """One agent's seq numbers, its runs' recorders, and the consumers of its events."""

    def __init__(
        self, agent_id: str, sessions: SessionRegistry, read_limit: int, subscriber_limit: int
    ) -> None:
        self.agent_id = agent_id
        self._sessions = sessions
        self._broadcast = Broadcast(agent_id, read_limit, subscriber_limit)
        self._sequence = EventSequence(sessions.resume_seq, self._deliver)
        sessions.last_seq = lambda: self._sequence.last

    @property
    def last(self) -> int:
        """The last seq given out."""
        return self._sequence.last

    def recorder(self, run_id: str, session_key: str) -> RunRecorder:
        """The recorder of run `run_id` in `session_key`'s current session."""
        return RunRecorder(
            agent_id=self.agent_id,
            run_id=run_id,
            session_key=session_key,
            session=self._sessions.current(session_key),
            emit=self._sequence.emit,
            next_seq=self._sequence.next,
        )

    def announce(self, build: Callable[[int], AgentEvent]) -> None:
        """Emit an event no run records (e.g. `session_deleted`), given the next seq."""
        self._sequence.emit(build(self._sequence.next()))

    def subscribe(
        self, callback: Callback, on_gap: GapCallback | None = None, name: str = ""
    ) -> Callable[[], None]:
        """Receive every event from now on, in order, via `callback`.

        A sync callback is called inline as each event is emitted (it must not block); an
        `async def` one runs in its own task behind a bounded channel, and `on_gap` hears about
        events dropped when it falls behind (see `hub.fanout`). A callback may raise: it is
        logged and keeps receiving. Returns the unsubscribe function."""
        return self._broadcast.subscribe(callback, on_gap, name)

    def read(self) -> AsyncGenerator[ReadItem, None]:
        """The single-consumer stream: every event, plus `ReadGap` when the reader fell
        behind. Ends when the stream closes.

        A second reader while one is active raises `ReaderBusyError` on its first step. A
        reader that stops early should close the iterator (`contextlib.aclosing`) to free the
        slot at once."""
        return self._broadcast.read()

    async def close(self, drain: float) -> None:
        """End `read()` once drained; give subscribers `drain` seconds to take their events."""
        await self._broadcast.close(drain)

    def _deliver(self, event: AgentEvent) -> None:
        self._broadcast.emit(event)
        self._sessions.announced(event)
