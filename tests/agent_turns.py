"""Helpers for tests that drive an AsyncAgent one turn at a time and look at its events."""

from __future__ import annotations

import asyncio
from typing import TypeVar

from hub.agent import AsyncAgent
from hub.events import AgentEnd, AgentEvent, MessageEnd

E = TypeVar("E", bound=AgentEvent)


async def run_turn(agent: AsyncAgent, text: str) -> list[AgentEvent]:
    """Write one turn and return the run's events, up to and including its agent_end."""
    events: list[AgentEvent] = []
    done = asyncio.Event()
    run_id = ""

    def collect(event: AgentEvent) -> None:
        if event.run_id == run_id:
            events.append(event)
            if isinstance(event, AgentEnd):
                done.set()

    unsubscribe = agent.subscribe(collect)
    try:
        run_id = agent.write(text)
        async with asyncio.timeout(20):
            await done.wait()
    finally:
        unsubscribe()
    return events


def assistant_ends(events: list[AgentEvent]) -> list[MessageEnd]:
    return [e for e in events if isinstance(e, MessageEnd) and e.role == "assistant"]


def only(events: list[AgentEvent], kind: type[E]) -> E:
    found = [e for e in events if isinstance(e, kind)]
    assert len(found) == 1, found
    return found[0]
