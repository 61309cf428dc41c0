"""EventSequence: seq numbers for one agent's events, and their delivery in seq order."""

from __future__ import annotations

from collections.abc import Callable

from hub.events import AgentEvent


class EventSequence:
    """`next()` gives out seqs; `emit(event)` delivers events in seq order.

    Runs of different sessions interleave, and an event whose entry is being saved holds its
    seq meanwhile: events with later seqs wait here until it is emitted."""

    def __init__(self, last: int, deliver: Callable[[AgentEvent], None]) -> None:
        self.last = last
        self._deliver = deliver
        self._held: dict[int, AgentEvent] = {}
        self._emitted = last

    def next(self) -> int:
        self.last += 1
        return self.last

    def emit(self, event: AgentEvent) -> None:
        self._held[event.seq] = event
        while (following := self._emitted + 1) in self._held:
            ready = self._held.pop(following)
            self._emitted = following
            self._deliver(ready)
