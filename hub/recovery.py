"""Crash recovery: runs that began but never ended are closed at start-up, and answered again
when that is safe.

`RunJournal` keeps `<data-dir>/runs.jsonl`: a line when a run starts (agent, session key and
the full origin, including the chat route that events never carry), a line
per tool call it starts, and a line when it ends. The lines are written as the events happen,
each with one `write()` (no fsync: a killed process loses nothing the kernel has; the session
files are the fsynced truth), so a `kill -9` leaves the journal saying which runs were going.

At the next start, `Recovery` takes every run the journal left open and:
1. closes it in its session with status `interrupted` (`AsyncAgent.end_interrupted`: a short
   assistant note marked aborted, then the `run` entry and its `agent_end`), so history and
   every client show it and nothing looks busy;
2. answers the user's message again (a turn with source `recovery`, replying where the
   original came from) when policy allows and the run started no tool with side effects
   (none, or only tools in `read_only_tools`); otherwise tells the surface it came from that
   the hub restarted before the reply and nothing was re-run.
Runs the hub started itself (schedules, heartbeats, recoveries) are only closed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter, ValidationError

from hub.events import AgentEnd, AgentEvent, AgentStart, ToolExecutionStart
from hub.origin import ChannelRoute, Origin
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


class _Ended(WireModel):
    op: Literal["end"] = "end"
    run_id: str


_Line = Annotated[_Started | _Tool | _Ended, Field(discriminator="op")]
_LINE: TypeAdapter[_Started | _Tool | _Ended] = TypeAdapter(_Line)


class OpenRun(WireModel):
    """A run the journal saw start and never end."""

    run_id: str
    agent_id: str
    session_key: str
    origin: Origin
    route: ChannelRoute | None = None
    tools: list[str] = Field(default_factory=list)

    def full_origin(self) -> Origin:
        return self.origin.model_copy(update={"route": self.route})


class RunJournal:
    """`runs.jsonl`: written by a sync subscriber as runs start, call tools and end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._open: set[str] = set()
        self._lines = 0

    def load(self) -> list[OpenRun]:
        """The runs the file leaves open (torn or unreadable lines skipped, warned once)."""
        open_runs: dict[str, OpenRun] = {}
        bad = 0
        for raw in _lines(self.path):
            try:
                line = _LINE.validate_json(raw)
            except ValidationError:
                bad += 1
                continue
            if isinstance(line, _Started):
                open_runs[line.run_id] = OpenRun(
                    **line.model_dump(exclude={"op", "origin"}), origin=line.origin
                )
            elif isinstance(line, _Tool) and line.run_id in open_runs:
                open_runs[line.run_id].tools.append(line.tool)
            elif isinstance(line, _Ended):
                open_runs.pop(line.run_id, None)
        if bad:
            log.warning("%s: skipped %d unreadable line(s); kept the rest", self.path, bad)
        return list(open_runs.values())

    def reset(self) -> None:
        """Start an empty journal (after recovery handled what the old one left open)."""
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        self._lines = 0

    def on_event(self, event: AgentEvent) -> None:
        if isinstance(event, AgentStart):
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
        elif isinstance(event, ToolExecutionStart) and event.run_id in self._open:
            self._append(_Tool(run_id=event.run_id, tool=event.tool_name))
        elif isinstance(event, AgentEnd) and event.run_id in self._open:
            self._open.discard(event.run_id)
            self._append(_Ended(run_id=event.run_id))
            if self._lines > COMPACT_AFTER and not self._open:
                self.reset()

    def _append(self, line: _Started | _Tool | _Ended) -> None:
        data = _LINE.dump_json(line) + b"\n"
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
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
