"""Accepted messages: each message a `write` took is saved in its session (`AcceptedEntry`)
before the run that answers it starts, and announced to watchers (the recovery journal, which
indexes where to look). A restart then answers turns that were still waiting (`hub.recovery`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from hub.runs import Accepted, Turn
from hub.session_registry import SessionRegistry
from hub.sessions import AcceptedEntry, new_entry_id
from hub.tasks import TaskFunnel

log = logging.getLogger("agenthub.agent")


class AcceptedMessages:
    """Saves one agent's accepted messages; the run carrying one waits until it is saved."""

    def __init__(self, agent_id: str, sessions: SessionRegistry, seq: Callable[[], int]) -> None:
        self.agent_id = agent_id
        self._sessions = sessions
        self._seq = seq
        self._watchers: list[Callable[[Accepted], None]] = []
        self._saving = TaskFunnel(f"agent {agent_id}: accepted messages", log)

    def watch(self, callback: Callable[[Accepted], None]) -> Callable[[], None]:
        """Call `callback` (sync, inline) for every message accepted; returns the unwatch."""
        self._watchers.append(callback)
        return lambda: self._watchers.remove(callback)

    def record(self, turn: Turn, message: Turn, steer: bool) -> None:
        """Save `message` (its text and images) as accepted for `turn`'s run (`steer`: handed
        to it while it runs)."""
        session = self._sessions.current(turn.session_key)
        entry = AcceptedEntry(
            id=new_entry_id("a"),
            run_id=turn.run_id,
            seq=self._seq(),
            text=message.text,
            images=[image.ref for image in message.images],
            origin=turn.origin,
            route=turn.origin.route,
            steer=steer,
        )
        turn.recording.append(self._saving.spawn(session.append(entry)))
        self.announce(turn, session.session_id, steer=steer)

    def announce(self, turn: Turn, session_id: str, *, steer: bool) -> None:
        """Tell the watchers `turn` carries a message saved in `session_id`."""
        accepted = Accepted(
            agent_id=self.agent_id,
            session_key=turn.session_key,
            session_id=session_id,
            run_id=turn.run_id,
            steer=steer,
        )
        for watch in self._watchers:
            try:
                watch(accepted)
            except Exception:
                log.exception("agent %s: an accept watcher failed", self.agent_id)

    async def close(self) -> None:
        await self._saving.close()
