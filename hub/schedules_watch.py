"""RunWatch: wait for a run the hub started itself to end, and learn what it replied.

Schedules record each run's outcome; heartbeats look at the reply before delivering it. Call
`watch(run_id)` right after `Hub.submit` returned it (before yielding to the loop, so the run
cannot have started yet); the future resolves on the run's `agent_end`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from hub.events import AgentEnd, AgentError, AgentEvent, MessageEnd, RunStatus
from hub.hub import Hub


@dataclass(slots=True)
class RunResult:
    status: RunStatus
    # The assistant's messages, in order; `error` the agent_error message when it failed.
    texts: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def text(self) -> str:
        return "\n\n".join(t for t in self.texts if t)


@dataclass(slots=True)
class _Watched:
    future: asyncio.Future[RunResult]
    texts: list[str] = field(default_factory=list)
    error: str | None = None


class RunWatch:
    """One sync subscriber per agent, resolving a future per watched run."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._runs: dict[str, _Watched] = {}
        self._unsubscribe: list[Callable[[], None]] = []

    def start(self) -> None:
        for agent in self.hub.agents.values():
            self._unsubscribe.append(agent.subscribe(self._on_event, name="run-watch"))

    def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        for watched in self._runs.values():
            watched.future.cancel()
        self._runs.clear()

    def watch(self, run_id: str) -> asyncio.Future[RunResult]:
        watched = self._runs.get(run_id)
        if watched is None:
            future = asyncio.get_running_loop().create_future()
            watched = self._runs[run_id] = _Watched(future)
        return watched.future

    def _on_event(self, event: AgentEvent) -> None:
        watched = self._runs.get(event.run_id)
        if watched is None:
            return
        if isinstance(event, MessageEnd) and event.role == "assistant":
            watched.texts.append(event.text)
        elif isinstance(event, AgentError):
            watched.error = event.message
        elif isinstance(event, AgentEnd):
            del self._runs[event.run_id]
            if not watched.future.done():
                watched.future.set_result(RunResult(event.status, watched.texts, watched.error))
