"""Crash recovery: runs that began but never ended are closed at start-up, and answered again
when that is safe.

`RunJournal` keeps `<data-dir>/runs.jsonl`: a line when a message is accepted for a run (where
its `AcceptedEntry` was saved), a line when a run starts (agent, session key and the full
origin, including the chat route that events never carry), a line per tool call it starts, a
line per approval it waits for and one when that is decided, and a line when it ends. The lines
are written as the events happen, each with one `write()` (no fsync: a killed process loses
nothing the kernel has; the session files are the fsynced truth), so a `kill -9` leaves the
journal saying which runs were going.

At the next start, `Recovery` takes every run the journal left open and:
1. closes it in its session with status `interrupted` (`hub.recovery_service`: an
   approval it was waiting for resolved as denied by `restart`, with the tool call's refusal
   as its result; a short assistant note marked aborted; then the `run` entry and its
   `agent_end`), so history and every client show it and nothing looks busy;
2. answers the user's message again (a turn with source `recovery`, replying where the
   original came from) when policy allows and the run started no tool with side effects
   (none, or only tools in `read_only_tools`); otherwise tells the surface it came from that
   the hub restarted before the reply and nothing was re-run.
Runs the hub started itself (schedules, heartbeats, recoveries) are only closed.
3. queues again, in the order they were accepted and behind the runs answered again, the turns
   that were accepted but never started (and steering an interrupted run never took), before
   any new input: runs are held until recovery is done.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, JsonValue, TypeAdapter, ValidationError

from hub.events import (
    AgentEnd,
    AgentEvent,
    AgentStart,
    ApprovalRequest,
    ApprovalResolved,
    SessionDeleted,
    ToolExecutionStart,
)
from hub.jsonl_files import write_all, write_atomic
from hub.origin import ChannelRoute, Origin
from hub.recorder import Unanswered
from hub.runs import Accepted
from hub.wire import WireModel

log = logging.getLogger("agenthub.recovery")

COMPACT_AFTER = 2000

Rerun = Literal["safe", "never"]
# Tools that only read: re-running a turn that called them repeats no side effect.
READ_ONLY_TOOLS = frozenset({"web_fetch", "read_file", "list_files", "calculator", "calc"})


class RecoveryConfig(WireModel):
    """TOML `[recovery]`. `rerun`: `safe` answers an interrupted message again when its run
    made no tool call with side effects; `never` only tells the user. `sessions` overrides it
    per session key. `read_only_tools` adds to the built-in read-only tools."""

    rerun: Rerun = "safe"
    sessions: dict[str, Rerun] = Field(default_factory=dict)
    read_only_tools: list[str] = Field(default_factory=list)

    def policy(self, session_key: str) -> Rerun:
        return self.sessions.get(session_key, self.rerun)

    def read_only(self, tool: str) -> bool:
        return tool in READ_ONLY_TOOLS or tool in self.read_only_tools


class _Started(WireModel):
    op: Literal["start"] = "start"
    run_id: str
    agent_id: str
    session_key: str
    origin: Origin
    route: ChannelRoute | None = None


class _Tool(WireModel):
    op: Literal["tool"] = "tool"
    run_id: str
    tool: str
    tool_call_id: str | None = None


class _Asked(WireModel):
    op: Literal["approval"] = "approval"
    run_id: str
    approval_id: str
    tool: str
    args: JsonValue = None


class _Decided(WireModel):
    op: Literal["decided"] = "decided"
    run_id: str
    approval_id: str


class _Ended(WireModel):
    op: Literal["end"] = "end"
    run_id: str


class AcceptedLine(Accepted):
    """The journal line of an `Accepted` message."""

    op: Literal["accept"] = "accept"


_Lines = _Started | _Tool | _Ended | AcceptedLine | _Asked | _Decided
_LINE: TypeAdapter[_Lines] = TypeAdapter(Annotated[_Lines, Field(discriminator="op")])


class OpenRun(WireModel):
    """A run the journal saw start and never end."""

    run_id: str
    agent_id: str
    session_key: str
    origin: Origin
    route: ChannelRoute | None = None
    tools: list[str] = Field(default_factory=list)
    # Tool calls it started (call id -> tool), and approvals it was still waiting for.
    calls: dict[str, str] = Field(default_factory=dict)
    waiting_for: dict[str, _Asked] = Field(default_factory=dict)
    # Messages steered into it (their `AcceptedEntry` is in its session).
    steered: bool = False

    def full_origin(self) -> Origin:
        return self.origin.model_copy(update={"route": self.route})

    def unanswered(self, finished: set[str]) -> list[Unanswered]:
        """The approvals it waited for, each with the latest call of its tool that did not
        finish (not in `finished`), which is the one that waited."""
        found = []
        for asked in self.waiting_for.values():
            calls = [c for c, tool in self.calls.items() if tool == asked.tool]
            call = next((c for c in reversed(calls) if c not in finished), None)
            found.append(Unanswered(asked.approval_id, asked.tool, asked.args, call))
        return found


class JournalState(WireModel):
    """What the journal left open: runs that started and never ended, and messages accepted
    for runs that never started (oldest first, one line per run)."""

    runs: list[OpenRun] = Field(default_factory=list)
    waiting: list[AcceptedLine] = Field(default_factory=list)


class RunJournal:
    """`runs.jsonl`: written by a sync subscriber as runs start, call tools and end, and by an
    accept watcher as messages are accepted."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._open: set[str] = set()
        # Accepted for runs not started yet: kept when the journal is compacted.
        self._waiting: dict[str, AcceptedLine] = {}
        self._lines = 0

    def load(self) -> JournalState:
        """What the file leaves open (torn or unreadable lines skipped, warned once)."""
        open_runs: dict[str, OpenRun] = {}
        waiting: dict[str, AcceptedLine] = {}
        bad = 0
        for raw in _lines(self.path):
            try:
                line = _LINE.validate_json(raw)
            except ValidationError:
                bad += 1
                continue
            if isinstance(line, AcceptedLine):
                if line.run_id in open_runs:
                    run = open_runs[line.run_id]
                    open_runs[line.run_id] = run.model_copy(update={"steered": True})
                else:
                    waiting.setdefault(line.run_id, line)
            elif isinstance(line, _Started):
                waiting.pop(line.run_id, None)
                open_runs[line.run_id] = OpenRun(
                    **line.model_dump(exclude={"op", "origin"}), origin=line.origin
                )
            elif isinstance(line, _Tool) and line.run_id in open_runs:
                open_runs[line.run_id].tools.append(line.tool)
                if line.tool_call_id is not None:
                    open_runs[line.run_id].calls[line.tool_call_id] = line.tool
            elif isinstance(line, _Asked) and line.run_id in open_runs:
                open_runs[line.run_id].waiting_for[line.approval_id] = line
            elif isinstance(line, _Decided) and line.run_id in open_runs:
                open_runs[line.run_id].waiting_for.pop(line.approval_id, None)
            elif isinstance(line, _Ended):
                open_runs.pop(line.run_id, None)
        if bad:
            log.warning("%s: skipped %d unreadable line(s); kept the rest", self.path, bad)
        return JournalState(runs=list(open_runs.values()), waiting=list(waiting.values()))

    def reset(self, keep: Sequence[AcceptedLine] = ()) -> None:
        """Start a journal holding only the messages still waiting, and `keep` (those the old
        journal left waiting, until recovery has queued them again)."""
        for line in keep:
            self._waiting.setdefault(line.run_id, line)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        self._lines = 0
        for line in list(self._waiting.values()):
            self._append(line)

    def on_accepted(self, accepted: Accepted) -> None:
        line = AcceptedLine(**accepted.model_dump())
        if not accepted.steer:
            self._waiting.setdefault(accepted.run_id, line)
        self._append(line)

    def on_event(self, event: AgentEvent) -> None:
        if isinstance(event, SessionDeleted):
            self._forget(event.agent_id, event.session_key)
        elif isinstance(event, AgentStart):
            self._append(
                _Started(
                    run_id=event.run_id,
                    agent_id=event.agent_id,
                    session_key=event.session_key,
                    origin=event.origin,
                    route=event.origin.route,
                )
            )
            self._open.add(event.run_id)
            self._waiting.pop(event.run_id, None)
        elif event.run_id not in self._open:
            return
        elif isinstance(event, ToolExecutionStart):
            self._append(
                _Tool(run_id=event.run_id, tool=event.tool_name, tool_call_id=event.tool_call_id)
            )
        elif isinstance(event, ApprovalRequest):
            self._append(
                _Asked(
                    run_id=event.run_id,
                    approval_id=event.approval_id,
                    tool=event.tool,
                    args=event.args,
                )
            )
        elif isinstance(event, ApprovalResolved):
            self._append(_Decided(run_id=event.run_id, approval_id=event.approval_id))
        elif isinstance(event, AgentEnd):
            self._open.discard(event.run_id)
            self._append(_Ended(run_id=event.run_id))
            if self._lines > COMPACT_AFTER and not self._open:
                self.reset()

    def _forget(self, agent_id: str, session_key: str) -> None:
        """Rewrite the journal without the runs of a deleted session (their origins and the
        arguments of the approvals they asked for go with its transcript). It has none going:
        a busy session is not deleted."""
        kept: list[bytes] = []
        gone: set[str] = set()
        for raw in _lines(self.path):
            try:
                line = _LINE.validate_json(raw)
            except ValidationError:
                kept.append(raw)
                continue
            if isinstance(line, AcceptedLine | _Started) and (line.agent_id, line.session_key) == (
                agent_id,
                session_key,
            ):
                gone.add(line.run_id)
            if line.run_id not in gone:
                kept.append(raw)
        if not gone:
            return
        try:
            write_atomic(self.path, b"".join(raw + b"\n" for raw in kept))
        except OSError as exc:
            log.error("%s: could not drop a deleted session's runs (%s)", self.path, exc)
            return
        self._lines = len(kept)

    def _append(self, line: _Lines) -> None:
        data = _LINE.dump_json(line) + b"\n"
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                write_all(fd, data)
            finally:
                os.close(fd)
        except OSError as exc:
            log.error("%s: could not record a run (%s)", self.path, exc)
        self._lines += 1


def _lines(path: Path) -> Iterator[bytes]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return
    for line in raw.split(b"\n"):
        if line.strip():
            yield line
