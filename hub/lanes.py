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

Every message placed is handed to `record` with the turn that carries it, so the agent saves it
as accepted before that turn runs (a restart answers it if it never started); a run's steering
it never took is recorded again as the leftover turn's. `opened` holds every run back while it
is clear (start-up recovery queues its turns first).

Debounce (chat channels): a message placed with `hold=(idle, cap)` waits `idle` seconds for
another; each one that arrives in time joins the same turn and restarts the wait, but the turn
starts at the latest `cap` seconds after its first message. A burst becomes one turn.
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
# (the turn carrying a message, the message as written, whether it was steered into the
# running turn)
Record = Callable[[Turn, Turn, bool], None]
WRITE_MODES: tuple[WriteMode, ...] = ("queue", "collect", "steer", "interrupt")


def _same_chat(a: Turn, b: Turn) -> bool:
    ra, rb = a.origin.route, b.origin.route
    return (
        ra is not None
        and rb is not None
        and (ra.channel, ra.chat_id, ra.thread_id) == (rb.channel, rb.chat_id, rb.thread_id)
    )


class SessionLane:
    """The queue and worker of one session key."""

    def __init__(
        self,
        key: str,
        run: Callable[[Turn], Awaitable[None]],
        slots: asyncio.Semaphore,
        on_idle: Callable[[SessionLane], None],
        *,
        record: Record,
        opened: asyncio.Event,
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
        self._record = record
        self._opened = opened
        self._worker: asyncio.Task[None] | None = None
        self._nap: asyncio.Future[None] | None = None

    @property
    def busy(self) -> bool:
        return self.current is not None or bool(self.turns)

    def place(self, turn: Turn, mode: WriteMode, hold: tuple[float, float] | None = None) -> Turn:
        """Queue `turn` as `mode` says, debounced by `hold` (idle, cap seconds); returns the
        turn that will carry its text (another one for `collect`, `steer` and a debounce)."""
        carrier = self._carrier(turn, mode, hold)
        self._record(carrier, turn, carrier is not turn and carrier is self.current)
        return carrier

    def queue_first(self, turns: list[Turn]) -> None:
        """Put `turns` (recovered at start-up, recorded already) ahead of the queue, in order."""
        self.turns.extendleft(reversed(turns))
        self._start()

    def _carrier(self, turn: Turn, mode: WriteMode, hold: tuple[float, float] | None) -> Turn:
        current = self.current
        if hold is not None and mode in ("queue", "collect"):
            now = asyncio.get_running_loop().time()
            last = self.turns[-1] if self.turns else None
            if last is not None and last.ready_at > now and _same_chat(last, turn):
                last.text = f"{last.text}\n\n{turn.text}"
                last.images += turn.images
                last.ready_at = min(last.ready_cap, now + hold[0])
                return last
            turn.ready_at, turn.ready_cap = now + hold[0], now + hold[1]
        if mode == "collect" and self.turns:
            last = self.turns[-1]
            last.text = f"{last.text}\n\n{turn.text}"
            last.images += turn.images
            return last
        # Images wait for their own turn: a model step takes steering as text only.
        if mode == "steer" and current is not None and not current.streamed and not turn.images:
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
        loop = asyncio.get_running_loop()
        try:
            while self.turns:
                await self._opened.wait()
                if not self.turns:
                    break  # dropped by close() while runs were held
                wait = self.turns[0].ready_at - loop.time()
                if wait > 0:
                    await self._sleep(loop, wait)
                    continue
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
                        leftover = turn.leftover()
                        self._record(leftover, leftover, False)
                        self.turns.appendleft(leftover)
        finally:
            self._worker = None
            self._on_idle(self)

    async def _sleep(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        """Wait for a debounce; `drop_queued` cuts it short."""
        self._nap = loop.create_future()
        wake = loop.call_later(seconds, self._wake)
        try:
            await self._nap
        finally:
            wake.cancel()
            self._nap = None

    def _wake(self) -> None:
        if self._nap is not None and not self._nap.done():
            self._nap.set_result(None)

    def drop_queued(self) -> list[Turn]:
        dropped = list(self.turns)
        self.turns.clear()
        self._wake()
        return dropped

    async def join(self) -> None:
        """Wait until the worker has ended (after `drop_queued` and an abort)."""
        if self._worker is not None:
            await asyncio.shield(self._worker)
