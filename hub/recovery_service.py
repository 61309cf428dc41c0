"""The two halves of crash recovery as services (see `hub.recovery` for the whole story).

`Recovery.closing` starts first of all parts: it closes every run the journal left open, then
starts journaling new runs, before any surface can start one. `Recovery.resuming` starts last,
once the channels listen: it answers the safe ones again and tells the others' surfaces.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hub.errors import CodedError
from hub.health import Probe, SubsystemHealth
from hub.hub import Hub
from hub.origin import ChannelRoute
from hub.recovery import OpenRun, RecoveryConfig, RunJournal
from hub.sessions import MessageEntry, RunEntry, ToolEntry

log = logging.getLogger("agenthub.recovery")

Deliver = Callable[[ChannelRoute, str], object]

RERUN_NOTE = "The hub restarted before this reply was finished; answering again."
TOLD_NOTE = (
    "The hub restarted before this reply was finished. Nothing was re-run, because the turn "
    "had already used {tools}, which may have changed something. Ask again if you still "
    "want it."
)
LOST_NOTE = "The hub restarted before your message was saved; please send it again."
CLOSED_NOTE = "The hub restarted before this run was finished."


@dataclass(slots=True)
class _Plan:
    run: OpenRun
    rerun: bool
    replay: bool
    notice: str | None


class Recovery:
    def __init__(self, hub: Hub, path: Path, config: RecoveryConfig | None = None) -> None:
        self.hub = hub
        self.config = config or RecoveryConfig()
        self.journal = RunJournal(path)
        self.deliver: Deliver | None = None
        self.closed: list[str] = []
        self.rerun: list[str] = []
        self.told: list[str] = []
        self._plans: list[_Plan] = []
        self._unsubscribe: list[Callable[[], None]] = []
        self.closing = _Closing(self)
        self.resuming = _Resuming(self)

    async def close_interrupted(self) -> None:
        for run in await asyncio.to_thread(self.journal.load):
            try:
                plan = await self._close(run)
            except (OSError, CodedError) as exc:
                log.error("could not close interrupted run %s (%s)", run.run_id, exc)
                continue
            if plan is not None:
                self._plans.append(plan)
        await asyncio.to_thread(self.journal.reset)
        for agent in self.hub.agents.values():
            self._unsubscribe.append(agent.subscribe(self.journal.on_event, name="recovery"))

    def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()

    async def _close(self, run: OpenRun) -> _Plan | None:
        agent = self.hub.agents.get(run.agent_id)
        if agent is None:
            log.warning("interrupted run %s: agent %s is gone", run.run_id, run.agent_id)
            return None
        session = agent.sessions.current(run.session_key)
        mine = [e for e in session.entries if getattr(e, "run_id", None) == run.run_id]
        if any(isinstance(e, RunEntry) for e in mine):
            return None  # it ended; only the journal's last line was lost
        asked = next((e for e in mine if isinstance(e, MessageEntry) and e.role == "user"), None)
        tools = [*run.tools, *(e.tool_name for e in mine if isinstance(e, ToolEntry))]
        effects = sorted({t for t in tools if not self.config.read_only(t)})
        by_person = run.origin.source == "user"
        rerun = (
            by_person
            and asked is not None
            and not effects
            and self.config.policy(run.session_key) == "safe"
        )
        if not by_person:
            note = CLOSED_NOTE
        elif asked is None:
            note = LOST_NOTE
        elif rerun:
            note = RERUN_NOTE
        else:
            used = ", ".join(effects) if effects else "tools"
            note = TOLD_NOTE.format(tools=used)
        await agent.end_interrupted(run.run_id, run.session_key, note)
        self.closed.append(run.run_id)
        log.warning(
            "run %s of %s/%s was interrupted by a restart: %s",
            run.run_id,
            run.agent_id,
            run.session_key,
            "answering again" if rerun else "closed" if not by_person else "told the user",
        )
        notice = None if rerun or not by_person else note
        return _Plan(run, rerun=rerun, replay=asked is not None, notice=notice)

    def resume(self) -> None:
        plans, self._plans = self._plans, []
        for plan in plans:
            run = plan.run
            if plan.rerun:
                assert plan.replay
                origin = run.full_origin().model_copy(
                    update={"source": "recovery", "replay_of": run.run_id}
                )
                text = self._question(run)
                try:
                    self.hub.submit(run.agent_id, text, origin, session_key=run.session_key)
                except CodedError as exc:
                    log.error("could not answer run %s again (%s)", run.run_id, exc.message)
                    continue
                self.rerun.append(run.run_id)
            elif plan.notice is not None:
                self.told.append(run.run_id)
                if run.route is not None and self.deliver is not None:
                    self.deliver(run.route, plan.notice)
                # Desktop and web clients see the note in the session.

    def _question(self, run: OpenRun) -> str:
        session = self.hub.agent(run.agent_id).sessions.current(run.session_key)
        for entry in session.entries:
            if (
                isinstance(entry, MessageEntry)
                and entry.role == "user"
                and entry.run_id == run.run_id
            ):
                return entry.text
        raise AssertionError("a rerun is planned only for a saved message")

    def probe(self) -> SubsystemHealth:
        detail = (
            f"{len(self.closed)} interrupted run(s) closed at start-up, "
            f"{len(self.rerun)} answered again, {len(self.told)} told"
        )
        return SubsystemHealth(name="recovery", status="ok", detail=detail)


class _Closing:
    def __init__(self, recovery: Recovery) -> None:
        self.recovery = recovery

    @property
    def name(self) -> str:
        return "recovery"

    def probes(self) -> dict[str, Probe]:
        return {"recovery": self.recovery.probe}

    async def start(self) -> None:
        await self.recovery.close_interrupted()

    async def stop(self) -> None:
        self.recovery.stop()


class _Resuming:
    def __init__(self, recovery: Recovery) -> None:
        self.recovery = recovery

    @property
    def name(self) -> str:
        return "recovery (resume)"

    def probes(self) -> dict[str, Probe]:
        return {}

    async def start(self) -> None:
        self.recovery.resume()

    async def stop(self) -> None:
        """Nothing runs between start-ups."""
