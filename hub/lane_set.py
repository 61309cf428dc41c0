"""LaneSet: the run queues of one agent's session keys, and the bound on runs going at once.

A lane exists while its key has work (and always for `main`); an idle one is dropped, its
key's state living on in the session registry. `idle` is set when no lane has work; `opened`
gates every run's start (cleared while start-up recovery queues what it found). A session
switch or compaction happens `between_turns` of its key; `stop` ends every lane on close.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from hub.events import MAIN_SESSION
from hub.lanes import Record, SessionLane, WriteMode
from hub.runs import Turn


class LaneSet:
    """Lanes by session key, made on first use."""

    def __init__(
        self,
        run: Callable[[Turn], Awaitable[None]],
        *,
        max_concurrent_runs: int,
        record: Record,
        mode_of: Callable[[str], WriteMode],
        on_idle: Callable[[], None],
    ) -> None:
        self._run = run
        self._record = record
        self._mode_of = mode_of
        self._on_idle = on_idle
        self._slots = asyncio.Semaphore(max(1, max_concurrent_runs))
        self._lanes: dict[str, SessionLane] = {}
        self.idle = asyncio.Event()
        self.idle.set()
        self.opened = asyncio.Event()
        self.opened.set()

    def lane(self, session_key: str) -> SessionLane:
        """The run queue of `session_key` (made when it has none)."""
        lane = self._lanes.get(session_key)
        if lane is None:
            lane = SessionLane(
                session_key,
                self._run,
                self._slots,
                self.lane_idle,
                record=self._record,
                opened=self.opened,
            )
            lane.mode = self._mode_of(session_key)
            self._lanes[session_key] = lane
        return lane

    def get(self, session_key: str) -> SessionLane | None:
        """The key's lane if it has one now (never makes one)."""
        return self._lanes.get(session_key)

    def all(self) -> list[SessionLane]:
        return list(self._lanes.values())

    @property
    def busy(self) -> bool:
        return any(lane.busy for lane in self._lanes.values())

    def running(self, run_id: str) -> bool:
        """Whether run `run_id` is being answered right now (in any session)."""
        return any(
            lane.current is not None and lane.current.run_id == run_id
            for lane in self._lanes.values()
        )

    @property
    def queued(self) -> int:
        """Turns written but not started, across sessions (waiting for a slot included)."""
        return sum(len(lane.turns) for lane in self._lanes.values())

    def lane_idle(self, lane: SessionLane) -> None:
        """A lane ran out of work (or a switch between runs is done): drop it unless it is
        `main`'s or a run holds it, and set `idle` when no lane has work."""
        if (
            lane.key != MAIN_SESSION
            and not lane.lock.locked()
            and self._lanes.get(lane.key) is lane
        ):
            del self._lanes[lane.key]
        self._on_idle()
        if not self.busy:
            self.idle.set()

    @asynccontextmanager
    async def between_turns(self, session_key: str) -> AsyncIterator[SessionLane]:
        """Hold `session_key`'s lane between two of its runs (none runs meanwhile), then
        treat it as idle unless a turn waits."""
        lane = self.lane(session_key)
        async with lane.lock:
            yield lane
        if not lane.busy:
            self.lane_idle(lane)

    async def stop(self) -> list[Turn]:
        """Drop every turn that has not started, abort the runs going, and return once every
        lane's worker has ended and each of those turns is saved: the dropped ones."""
        lanes = self.all()
        dropped = [turn for lane in lanes for turn in lane.drop_queued()]
        running = [lane.current for lane in lanes if lane.current is not None]
        for turn in running:
            turn.steering.clear()
            turn.abort()
        self.opened.set()
        saved = (turn.recorded() for turn in [*dropped, *running])
        await asyncio.gather(*(lane.join() for lane in lanes), *saved)
        return dropped
