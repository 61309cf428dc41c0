"""SessionLane: the serial run queue of one session key.

Turns of one session run one at a time, in the order they were queued; different lanes run
concurrently, each run holding one of the agent's run slots (a semaphore: the global bound).
A turn waiting for a slot is still queued (`queued` counts it). A lane has a worker task only
while it has work, so thousands of idle sessions cost no tasks.

Write modes (`WriteMode`) decide what a message does when its session is busy:
- `queue`: wait for its own turn (the default).
- `collect`: merge into the last waiting turn when there is one, so a burst becomes one turn.
- `steer`: hand it to the running turn's model at its next step; when the model takes no
  steering (or the run ends first) it becomes the next turn.
- `interrupt`: abort the running turn, then answer this message first.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Literal

from hub.runs import Turn

log = logging.getLogger("agenthub.agent")

WriteMode = Literal["queue", "collect", "steer", "interrupt"]
WRITE_MODES: tuple[WriteMode, ...] = ("queue", "collect", "steer", "interrupt")


class SessionLane:
    """The queue and worker of one session key."""

    def __init__(
        self,
        key: str,
        run: Callable[[Turn], Awaitable[None]],
        slots: asyncio.Semaphore,
        on_idle: Callable[[SessionLane], None],
    ) -> None:
        self.key = key
        self.mode: WriteMode = "queue"
        self.turns: deque[Turn] = deque()
        self.current: Turn | None = None
        # Held for a whole run, so a session switch happens between runs, never inside one.
        self.lock = asyncio.Lock()
        self._run = run
        self._slots = slots
        self._on_idle = on_idle
        self._worker: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        return self.current is not None or bool(self.turns)

    def place(self, turn: Turn, mode: WriteMode) -> Turn:
        """Queue `turn` as `mode` says; returns the turn that will carry its text (another one
        for `collect` and `steer`)."""
        current = self.current
        if mode == "collect" and self.turns:
            last = self.turns[-1]
            last.text = f"{last.text}\n\n{turn.text}"
            return last
        if mode == "steer" and current is not None and not current.streamed:
            current.steering.append(turn.text)
            return current
        if mode == "interrupt" and current is not None:
            current.abort()
            self.turns.appendleft(turn)
        else:
            self.turns.append(turn)
        self._start()
        return turn

    def _start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(
                self._work(), name=f"session:{self.key}"
            )

    async def _work(self) -> None:
        try:
            while self.turns:
                async with self._slots:
                    if not self.turns:
                        break  # dropped by close() while this lane waited for a slot
                    turn = self.turns.popleft()
                    self.current = turn
                    try:
                        async with self.lock:
                            await self._run(turn)
                    except Exception:
                        log.exception("session %s: run %s crashed", self.key, turn.run_id)
                    finally:
                        self.current = None
                    if turn.steering:
                        # Steering the model never took: answer it as the next turn.
                        self.turns.appendleft(turn.leftover())
        finally:
            self._worker = None
            self._on_idle(self)

    def drop_queued(self) -> list[Turn]:
        dropped = list(self.turns)
        self.turns.clear()
        return dropped

    async def join(self) -> None:
        """Wait until the worker has ended (after `drop_queued` and an abort)."""
        if self._worker is not None:
            await asyncio.shield(self._worker)
