"""The two halves of crash recovery as services (see `hub.recovery` for the whole story).

`Recovery.closing` starts first of all parts: it holds every agent's runs, closes every run the
journal left open, then starts journaling new runs, before any surface can start one.
`Recovery.resuming` starts last, once the channels listen: it queues, ahead of anything written
meanwhile, the safe interrupted runs again, steering they never took and the turns that were
accepted but never started (in the order they were accepted), tells the other interrupted runs'
surfaces, and lets the runs go.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from hub.agent import AsyncAgent
from hub.attachments import AttachmentRef, TurnImage
from hub.errors import CodedError
from hub.health import Probe, SubsystemHealth
from hub.hub import Hub
from hub.origin import ChannelRoute
from hub.recorder import RunRecorder, Unanswered
from hub.recovery import AcceptedLine, OpenRun, RecoveryConfig, RunJournal
from hub.runs import Turn, new_run_id
from hub.sessions import AcceptedEntry, MessageEntry, RunEntry, Session, ToolEntry

log = logging.getLogger("agenthub.recovery")

Deliver = Callable[[ChannelRoute, str], object]

RERUN_NOTE = "The hub restarted before this reply was finished; answering again."
TOLD_NOTE = (
    "The hub restarted before this reply was finished. Nothing was re-run, because the turn "
    "had already used {tools}, which may have changed something. Ask again if you still "
    "want it."
)
DENIED_NOTE = "The hub restarted while {tools} waited for your approval: denied, nothing was run."
LOST_NOTE = "The hub restarted before your message was saved; please send it again."
CLOSED_NOTE = "The hub restarted before this run was finished."


@dataclass(slots=True)
class _Plan:
    run: OpenRun
    rerun: bool
    replay: bool
    notice: str | None
    # Messages steered into the run that it never took.
    leftover: list[AcceptedEntry]
    # Tools whose approval it was waiting for (denied at start-up).
    denied: list[str]


# Turns to queue first, per (agent id, session key), each with the session its message is
# saved in as accepted (None: not saved yet).
_Queue = dict[tuple[str, str], list[tuple[Turn, str | None]]]


class Recovery:
    def __init__(self, hub: Hub, path: Path, config: RecoveryConfig | None = None) -> None:
        self.hub = hub
        self.config = config or RecoveryConfig()
        self.journal = RunJournal(path)
        self.deliver: Deliver | None = None
        self.closed: list[str] = []
        self.rerun: list[str] = []
        self.told: list[str] = []
        self.requeued: list[str] = []
        # Approvals pending at the crash, denied at start-up.
        self.denied: list[str] = []
        self._plans: list[_Plan] = []
        self._waiting: list[tuple[AcceptedLine, Turn]] = []
        self._unsubscribe: list[Callable[[], None]] = []
        self.closing = _Closing(self)
        self.resuming = _Resuming(self)

    async def close_interrupted(self) -> None:
        for agent in self.hub.agents.values():
            agent.hold()
        state = await asyncio.to_thread(self.journal.load)
        for run in state.runs:
            try:
                plan = await self._close(run)
            except (OSError, CodedError) as exc:
                log.error("could not close interrupted run %s (%s)", run.run_id, exc)
                continue
            if plan is not None:
                self._plans.append(plan)
        found = ((line, self._waiting_turn(line)) for line in state.waiting)
        self._waiting = [(line, turn) for line, turn in found if turn is not None]
        # A crash before `resume` queued them finds them again.
        await asyncio.to_thread(self.journal.reset, [line for line, _ in self._waiting])
        for agent in self.hub.agents.values():
            self._unsubscribe.append(agent.subscribe(self.journal.on_event, name="recovery"))
            self._unsubscribe.append(agent.accepted.watch(self.journal.on_accepted))

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
        finished = {e.tool_call_id for e in mine if isinstance(e, ToolEntry)}
        unanswered = run.unanswered(finished)
        # A call still waiting for its approval never ran: it changed nothing.
        tools = list(run.tools)
        for approval in unanswered:
            if approval.tool in tools:
                tools.remove(approval.tool)
        tools += [e.tool_name for e in mine if isinstance(e, ToolEntry)]
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
        await _end_interrupted(agent.events.recorder(run.run_id, run.session_key), note, unanswered)
        self.denied += [approval.approval_id for approval in unanswered]
        self.closed.append(run.run_id)
        log.warning(
            "run %s of %s/%s was interrupted by a restart: %s",
            run.run_id,
            run.agent_id,
            run.session_key,
            "answering again" if rerun else "closed" if not by_person else "told the user",
        )
        notice = None if rerun or not by_person else note
        return _Plan(
            run,
            rerun=rerun,
            replay=asked is not None,
            notice=notice,
            leftover=_steering_left(run, mine) if run.steered else [],
            denied=sorted({approval.tool for approval in unanswered}),
        )

    def resume(self) -> None:
        """Queue what recovery found ahead of new input, tell the told, then let runs go."""
        plans, self._plans = self._plans, []
        queue: _Queue = {}
        try:
            for plan in plans:
                self._resume_run(plan, queue)
            for line, turn in self._waiting:
                queue.setdefault((line.agent_id, line.session_key), []).append(
                    (turn, line.session_id)
                )
                self.requeued.append(line.run_id)
            for (agent_id, key), turns in queue.items():
                try:
                    self.hub.agent(agent_id).queue_first(key, turns)
                except CodedError as exc:
                    log.error("could not queue recovered turns in %s (%s)", key, exc.message)
        finally:
            self._waiting = []
            for agent in self.hub.agents.values():
                agent.release()

    def _resume_run(self, plan: _Plan, queue: _Queue) -> None:
        run = plan.run
        turns = queue.setdefault((run.agent_id, run.session_key), [])
        if plan.denied and run.route is not None and self.deliver is not None:
            # The chat's question still shows its buttons: say how it ended.
            self.deliver(run.route, DENIED_NOTE.format(tools=", ".join(plan.denied)))
        if plan.rerun:
            assert plan.replay
            origin = run.full_origin().model_copy(
                update={"source": "recovery", "replay_of": run.run_id}
            )
            question = self._question(run)
            turn = Turn(new_run_id(), question.text, origin, run.session_key)
            turn.images = tuple(self._images(run.agent_id, run.run_id, question.attachments))
            turns.append((turn, None))
            self.rerun.append(run.run_id)
        elif plan.notice is not None:
            self.told.append(run.run_id)
            if run.route is not None and self.deliver is not None:
                self.deliver(run.route, plan.notice)
            # Desktop and web clients see the note in the session.
        if plan.leftover:
            text = "\n\n".join(entry.text for entry in plan.leftover)
            origin = plan.leftover[0].full_origin()
            turns.append((Turn(new_run_id(), text, origin, run.session_key), None))

    def _waiting_turn(self, line: AcceptedLine) -> Turn | None:
        """The turn to answer again for a message accepted before the restart whose run never
        started; None when it started after all, or cannot be read."""
        agent = self.hub.agents.get(line.agent_id)
        if agent is None:
            log.warning("waiting message for run %s: agent %s is gone", line.run_id, line.agent_id)
            return None
        session = _saved_in(agent, line)
        if session is None:
            return None
        pieces = [
            e
            for e in session.entries
            if isinstance(e, AcceptedEntry) and e.run_id == line.run_id and not e.steer
        ]
        started = any(
            isinstance(e, MessageEntry | ToolEntry | RunEntry) and e.run_id == line.run_id
            for e in [*session.entries, *agent.sessions.current(line.session_key).entries]
        )
        if started or not pieces:
            if not pieces:
                log.warning("waiting message for run %s was not saved; not answered", line.run_id)
            return None
        log.warning(
            "run %s of %s/%s was waiting when the hub stopped: answering it now",
            line.run_id,
            line.agent_id,
            line.session_key,
        )
        text = "\n\n".join(piece.text for piece in pieces if piece.text)
        turn = Turn(line.run_id, text, pieces[0].full_origin(), line.session_key)
        refs = [ref for piece in pieces for ref in piece.images]
        turn.images = tuple(self._images(line.agent_id, line.run_id, refs))
        return turn

    def _images(
        self, agent_id: str, run_id: str, refs: Iterable[AttachmentRef]
    ) -> Iterator[TurnImage]:
        """The stored images of a turn answered again (one gone from disk is left out)."""
        for ref in refs:
            try:
                yield TurnImage(ref, self.hub.media.load(agent_id, ref.id))
            except OSError as exc:
                log.warning("run %s: image %s is gone (%s)", run_id, ref.name, exc)

    def _question(self, run: OpenRun) -> MessageEntry:
        session = self.hub.agent(run.agent_id).sessions.current(run.session_key)
        for entry in session.entries:
            if (
                isinstance(entry, MessageEntry)
                and entry.role == "user"
                and entry.run_id == run.run_id
            ):
                return entry
        raise AssertionError("a rerun is planned only for a saved message")

    def probe(self) -> SubsystemHealth:
        detail = (
            f"{len(self.closed)} interrupted run(s) closed at start-up, "
            f"{len(self.rerun)} answered again, {len(self.told)} told; "
            f"{len(self.requeued)} waiting message(s) queued again, "
            f"{len(self.denied)} pending approval(s) denied"
        )
        return SubsystemHealth(name="recovery", status="ok", detail=detail)


def _steering_left(run: OpenRun, mine: Sequence[object]) -> list[AcceptedEntry]:
    """The messages steered into `run` that it never recorded (it takes them in order)."""
    steered = [e for e in mine if isinstance(e, AcceptedEntry) and e.steer]
    said = [e for e in mine if isinstance(e, MessageEntry) and e.role == "user"]
    # A replay records no question of its own; any other run's first user message is it.
    taken = len(said) if run.origin.replay_of else max(0, len(said) - 1)
    return steered[taken:]


async def _end_interrupted(
    recorder: RunRecorder, note: str, unanswered: Sequence[Unanswered]
) -> None:
    """Close a run found unfinished at start-up: the approvals it waited for denied by
    `restart` (`approval_resolved`, and each call's refusal), `note` as an assistant message
    marked aborted, then its `run` entry with status `interrupted` and the `agent_end` that
    tells every client the run is over."""
    for approval in unanswered:
        await recorder.deny_unanswered(approval, "restart")
    recorder.text(note)
    await recorder.end_message(aborted=True)
    await recorder.finish("interrupted", None)


def _saved_in(agent: AsyncAgent, line: AcceptedLine) -> Session | None:
    try:
        return agent.sessions.open(line.session_key, line.session_id)
    except (KeyError, OSError, ValueError) as exc:
        log.warning("waiting message for run %s: its session is unreadable (%s)", line.run_id, exc)
        return None


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
