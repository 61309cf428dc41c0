"""`<data-dir>/schedules.jsonl`: schedules added with `ctl schedules add` and what every
schedule did last.

Append-only (0600), one JSON object per line: `{"op": "add", "schedule": {…}}`,
`{"op": "remove", "name": …}`, `{"op": "ran", "name": …, "due": ms, "runId": …, "status": …,
"detail": …}`. Loading replays the lines; a torn or unreadable line is skipped (one warning
for the file, with the count) and the rest kept. When the file holds many more lines than it
describes, it is rewritten whole (a temporary file renamed over it).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter, ValidationError

from hub.events import now_ms
from hub.jsonl_files import write_all
from hub.schedules import ScheduleSpec
from hub.wire import WireModel

log = logging.getLogger("agenthub.schedules")

COMPACT_AFTER = 500

LastStatus = Literal[
    "running", "completed", "aborted", "failed", "interrupted", "skipped", "refused"
]


class LastRun(WireModel):
    """What a schedule did last: when it was due (ms), its run, and how that went. `detail`
    is the start of the reply, or why it failed or was skipped."""

    due: int
    run_id: str | None = None
    status: LastStatus
    detail: str = ""
    ts: int = Field(default_factory=now_ms)


class _Add(WireModel):
    op: Literal["add"] = "add"
    schedule: ScheduleSpec
    ts: int = Field(default_factory=now_ms)


class _Remove(WireModel):
    op: Literal["remove"] = "remove"
    name: str


class _Ran(WireModel):
    op: Literal["ran"] = "ran"
    name: str
    last: LastRun


_Line = Annotated[_Add | _Remove | _Ran, Field(discriminator="op")]
_LINE: TypeAdapter[_Add | _Remove | _Ran] = TypeAdapter(_Line)


class ScheduleStore:
    """The file and what it says: added schedules (with when they were added) and last runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.added: dict[str, ScheduleSpec] = {}
        self.added_at: dict[str, int] = {}
        self.last: dict[str, LastRun] = {}
        self._lines = 0

    def load(self) -> None:
        self.added.clear()
        self.added_at.clear()
        self.last.clear()
        self._lines = 0
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        bad = 0
        for line in raw.split(b"\n"):
            if not line.strip():
                continue
            try:
                self._apply(_LINE.validate_json(line))
            except ValidationError:
                bad += 1
        if bad:
            log.warning(
                "%s: skipped %d unreadable line(s) (torn or edited); kept the rest", self.path, bad
            )
        self._compact_if_needed()

    def _apply(self, line: _Add | _Remove | _Ran) -> None:
        self._lines += 1
        if isinstance(line, _Add):
            self.added[line.schedule.name] = line.schedule
            self.added_at[line.schedule.name] = line.ts
        elif isinstance(line, _Remove):
            self.added.pop(line.name, None)
            self.added_at.pop(line.name, None)
            self.last.pop(line.name, None)
        else:
            self.last[line.name] = line.last

    # -- changes (each one line, fsynced; blocking: call off the event loop) -----------------

    def add(self, spec: ScheduleSpec) -> None:
        self._write(_Add(schedule=spec))

    def remove(self, name: str) -> None:
        self._write(_Remove(name=name))

    def ran(self, name: str, last: LastRun, *, remember: bool = True) -> None:
        """Record `last`; `remember=False` when the caller already holds it in `last` (and
        may hold a newer one by the time this write, off the event loop, happens)."""
        self._write(_Ran(name=name, last=last), remember=remember)

    def _write(self, line: _Add | _Remove | _Ran, *, remember: bool = True) -> None:
        data = _LINE.dump_json(line) + b"\n"
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # a torn last line stays on its own line
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if remember:
            self._apply(line)
        else:
            self._lines += 1
        self._compact_if_needed()

    def _compact_if_needed(self) -> None:
        live = len(self.added) + len(self.last)
        if self._lines <= max(COMPACT_AFTER, 2 * live):
            return
        lines: list[_Add | _Remove | _Ran] = [
            _Add(schedule=spec, ts=self.added_at.get(name, now_ms()))
            for name, spec in self.added.items()
        ]
        lines += [_Ran(name=name, last=last) for name, last in self.last.items()]
        temporary = self.path.with_suffix(".jsonl.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            write_all(fd, b"".join(_LINE.dump_json(line) + b"\n" for line in lines))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.path)
        self._lines = len(lines)
