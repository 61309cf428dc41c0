"""Submitting a turn and learning how its run ended and what it answered: for callers that
want a reply rather than a stream (`messages.send`, agents messaging each other, schedules,
heartbeats)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import JsonValue

from hub.events import AgentEnd, AgentError, AgentEvent, MessageEnd, RunStatus
from hub.hub import Hub
from hub.lanes import WriteMode
from hub.origin import Origin


@dataclass
class RunResult:
    """`status` is None when the wait ran out first; `replies` are the run's assistant
    messages; `error` its `agent_error` (code, message), if any."""

    run_id: str
    status: RunStatus | None
    replies: list[str] = field(default_factory=list)
    error: tuple[str, str] | None = None

    @property
    def text(self) -> str:
        return "\n\n".join(self.replies)


class RunWatch:
    """The events of one run, collected from the agent's multi-consumer stream."""

    def __init__(self, on_event: Callable[[AgentEvent], None] | None = None) -> None:
        self.run_id: str | None = None
        self.on_event = on_event
        self.early: list[AgentEvent] = []
        self.replies: list[str] = []
        self.error: tuple[str, str] | None = None
        self.ended: asyncio.Future[RunStatus] = asyncio.get_running_loop().create_future()

    def __call__(self, event: AgentEvent) -> None:
        if self.run_id is None:
            # Called inline during submit: events of this run may come before its id is known.
            self.early.append(event)
        elif event.run_id == self.run_id:
            self._take(event)

    def bind(self, run_id: str) -> None:
        self.run_id = run_id
        early, self.early = self.early, []
        for event in early:
            if event.run_id == run_id:
                self._take(event)

    def _take(self, event: AgentEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)
        if isinstance(event, MessageEnd) and event.role == "assistant" and event.text:
            self.replies.append(event.text)
        elif isinstance(event, AgentError):
            self.error = (event.code, event.message)
        elif isinstance(event, AgentEnd) and not self.ended.done():
            self.ended.set_result(event.status)


@dataclass
class WatchedRun:
    """A submitted run whose end can be awaited once with `result()`."""

    run_id: str
    watch: RunWatch
    unsubscribe: Callable[[], None]

    async def result(self, wait_seconds: float | None = None) -> RunResult:
        """The run's outcome; status None when `wait_seconds` ran out first."""
        status: RunStatus | None = None
        try:
            async with asyncio.timeout(wait_seconds):
                status = await asyncio.shield(self.watch.ended)
        except TimeoutError:
            pass
        finally:
            self.unsubscribe()
        return RunResult(self.run_id, status, self.watch.replies, self.watch.error)


def submit_watched(
    hub: Hub,
    agent_id: str,
    text: str,
    origin: Origin,
    *,
    session_key: str | None = None,
    mode: WriteMode | None = None,
    on_event: Callable[[AgentEvent], None] | None = None,
) -> WatchedRun:
    """`Hub.submit`, listening to the run from before it is written (so none of its events
    can slip by); `on_event` sees each of them. Raises what `Hub.submit` raises."""
    agent = hub.agent(agent_id)
    watch = RunWatch(on_event)
    unsubscribe = agent.subscribe(watch, name="run-watch")
    try:
        run_id = hub.submit(agent_id, text, origin, session_key=session_key, mode=mode)
    except BaseException:
        unsubscribe()
        raise
    watch.bind(run_id)
    return WatchedRun(run_id, watch, unsubscribe)


class ReplyText:
    """A run's assistant text as its events arrive (a blank line between its messages):
    `take(event)` returns what the event added."""

    def __init__(self) -> None:
        self.text = ""
        self._written: dict[str, int] = {}  # message id -> characters taken

    def take(self, event: dict[str, JsonValue]) -> str:
        if event.get("type") not in ("message_update", "message_end"):
            return ""
        if event.get("role") != "assistant":
            return ""
        message_id, full = str(event.get("messageId")), str(event.get("text", ""))
        added = "\n\n" if message_id not in self._written and self._written else ""
        taken = self._written.setdefault(message_id, 0)
        if len(full) > taken:
            added += full[taken:]
            self._written[message_id] = len(full)
        self.text += added
        return added
