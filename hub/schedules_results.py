"""ScheduleResults: what each schedule did last, as `schedules.list` and the health probe show it.

A result is held in the store at once and saved to `schedules.jsonl` behind the event loop's
back, one write at a time in call order, so the file's last line per schedule is the truth. A
fire is recorded `running` when it starts and again with its run's outcome when that ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from hub.run_watch import WatchedRun
from hub.schedules_store import LastRun, LastStatus, ScheduleStore
from hub.tasks import TaskFunnel

log = logging.getLogger("agenthub.schedules")

DETAIL_CHARS = 200


class ScheduleResults:
    """The last result of each schedule that `exists`, kept in `store`."""

    def __init__(
        self, store: ScheduleStore, exists: Callable[[str], bool], tasks: TaskFunnel
    ) -> None:
        self.store = store
        self._exists = exists
        self._tasks = tasks
        self._writing = asyncio.Lock()
        self._saving: list[asyncio.Task[None]] = []

    def record(self, name: str, last: LastRun) -> None:
        self.store.last[name] = last
        self._saving = [t for t in self._saving if not t.done()]
        self._saving.append(self._tasks.spawn(self._save(name, last)))

    def follow(self, name: str, due: int, run: WatchedRun) -> None:
        """Record the fire of `name` due at `due` (ms) as running, then as its run ends."""
        self.record(name, LastRun(due=due, run_id=run.run_id, status="running"))
        self._tasks.spawn(self._finish(name, due, run), name=f"schedule:{name}")

    async def flush(self) -> None:
        """Wait until the results already known are saved (runs still going stay `running`)."""
        await asyncio.gather(*self._saving, return_exceptions=True)

    async def _finish(self, name: str, due: int, run: WatchedRun) -> None:
        outcome = await run.result()
        detail = outcome.error[1] if outcome.error else outcome.text
        status: LastStatus = outcome.status or "interrupted"
        last = LastRun(due=due, run_id=run.run_id, status=status, detail=detail[:DETAIL_CHARS])
        if self._exists(name):
            self.store.last[name] = last
        await self._save(name, last)

    async def _save(self, name: str, last: LastRun) -> None:
        async with self._writing:
            if not self._exists(name):
                return  # removed meanwhile
            try:
                await asyncio.to_thread(self.store.ran, name, last, remember=False)
            except OSError as exc:
                log.error("schedule %r: could not save its last result (%s)", name, exc)
