"""Sessions persisted as JSONL: `<data-dir>/sessions/<agentId>/<sessionId>.jsonl`.

The first line is a `SessionHeader`; then one entry per message, tool call and compaction.
Each append is written whole and fsynced before `append` returns. A crash can tear only the
line being written: on load a torn or unparsable line is skipped with a warning, and before
the next append a torn tail is cut off so it never glues onto a good entry.

Session ids sort by creation time, so the current session of an agent is the last file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, JsonValue, TypeAdapter, ValidationError

from hub.events import Role, now_ms
from hub.wire import WireModel

log = logging.getLogger("agenthub.sessions")

FORMAT_VERSION = 1


class SessionHeader(WireModel):
    type: Literal["session"] = "session"
    version: int = FORMAT_VERSION
    session_id: str
    agent_id: str
    created_at: int = Field(default_factory=now_ms)
    start_seq: int = 0


class MessageEntry(WireModel):
    """A user or assistant message. `seq` is the seq of its `message_end` event."""

    type: Literal["message"] = "message"
    id: str
    run_id: str
    seq: int
    role: Role
    text: str
    ts: int = Field(default_factory=now_ms)
    aborted: bool = False


class ToolEntry(WireModel):
    """A tool call and its result, kept in one entry so history never splits them."""

    type: Literal["tool"] = "tool"
    id: str
    run_id: str
    seq: int
    tool_call_id: str
    tool_name: str
    args: JsonValue
    result: JsonValue
    is_error: bool
    ts: int = Field(default_factory=now_ms)


class CompactionEntry(WireModel):
    """Entries before `first_kept_id` are left out of the model's context from here on."""

    type: Literal["compaction"] = "compaction"
    id: str
    seq: int
    first_kept_id: str | None
    removed: int
    kept: int
    reason: str
    summary: str | None = None
    ts: int = Field(default_factory=now_ms)


SessionEntry = Annotated[MessageEntry | ToolEntry | CompactionEntry, Field(discriminator="type")]
HistoryEntry = MessageEntry | ToolEntry
_ENTRY: TypeAdapter[SessionEntry] = TypeAdapter(SessionEntry)

_SAFE_ID = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def validate_id(kind: str, value: str) -> str:
    """Agent and session ids become path parts: allow a safe alphabet only."""
    if not value or len(value) > 64 or not set(value) <= _SAFE_ID or value.startswith("."):
        raise ValueError(f"{kind} must be 1-64 characters of [A-Za-z0-9._-], got {value!r}")
    return value


def new_session_id() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def new_entry_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(8)}"


class Session:
    """One JSONL session file: its entries in memory, appends fsynced to disk."""

    def __init__(self, path: Path, header: SessionHeader, entries: list[SessionEntry]) -> None:
        self.path = path
        self.header = header
        self.entries = entries
        self._lock = asyncio.Lock()

    @property
    def session_id(self) -> str:
        return self.header.session_id

    @property
    def last_seq(self) -> int:
        return max((entry.seq for entry in self.entries), default=self.header.start_seq)

    async def append(self, entry: SessionEntry) -> None:
        """Write one entry durably (write + fsync off the event loop), in call order."""
        line = _ENTRY.dump_json(entry) + b"\n"
        async with self._lock:
            await asyncio.to_thread(_append_line, self.path, line)
            self.entries.append(entry)

    def history(
        self, *, limit: int | None = None, before: int | None = None, after: int | None = None
    ) -> list[HistoryEntry]:
        """Messages and tool entries with `after < seq < before`, the last `limit` of them."""
        selected = [
            entry
            for entry in self.entries
            if not isinstance(entry, CompactionEntry)
            and (before is None or entry.seq < before)
            and (after is None or entry.seq > after)
        ]
        return selected[-limit:] if limit is not None and limit >= 0 else selected

    def context(self) -> list[HistoryEntry]:
        """What the model sees: entries from the last compaction's first kept entry on."""
        start = 0
        for index, entry in enumerate(self.entries):
            if isinstance(entry, CompactionEntry):
                start = next(
                    (
                        i
                        for i, e in enumerate(self.entries)
                        if not isinstance(e, CompactionEntry) and e.id == entry.first_kept_id
                    ),
                    index + 1,
                )
        return [e for e in self.entries[start:] if not isinstance(e, CompactionEntry)]

    def last_compaction(self) -> CompactionEntry | None:
        for entry in reversed(self.entries):
            if isinstance(entry, CompactionEntry):
                return entry
        return None


def _append_line(path: Path, line: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _cut_torn_tail(path: Path) -> None:
    """Drop a last line that has no newline (a write torn by a crash)."""
    with path.open("rb+") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        if size == 0:
            return
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return
        data = path.read_bytes()
        keep = data.rfind(b"\n") + 1
        log.warning("%s: cutting a torn last line (%d bytes)", path, size - keep)
        handle.truncate(keep)
        os.fsync(handle.fileno())


def load_session(path: Path) -> Session:
    """Read a session file, skipping (with a warning) any line that does not parse."""
    _cut_torn_tail(path)
    header: SessionHeader | None = None
    entries: list[SessionEntry] = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                if header is None:
                    header = SessionHeader.model_validate_json(raw)
                else:
                    entries.append(_ENTRY.validate_json(raw))
            except ValidationError as exc:
                log.warning(
                    "%s:%d: skipping unreadable line (%s)", path, number, exc.errors()[0]["msg"]
                )
    if header is None:
        raise ValueError(f"{path}: no session header")
    return Session(path, header, entries)


class SessionStore:
    """All sessions under `<data-dir>/sessions`, one folder per agent."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "sessions"

    def agent_dir(self, agent_id: str) -> Path:
        return self.root / validate_id("agent id", agent_id)

    def session_ids(self, agent_id: str) -> list[str]:
        folder = self.agent_dir(agent_id)
        if not folder.is_dir():
            return []
        return sorted(p.stem for p in folder.glob("*.jsonl"))

    def agent_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def current(self, agent_id: str) -> Session:
        """The agent's latest session, created (with its header) when it has none."""
        ids = self.session_ids(agent_id)
        for session_id in reversed(ids):
            try:
                return load_session(self.agent_dir(agent_id) / f"{session_id}.jsonl")
            except ValueError as exc:
                log.warning("%s", exc)
        return self.create(agent_id)

    def open(self, agent_id: str, session_id: str) -> Session:
        return load_session(
            self.agent_dir(agent_id) / f"{validate_id('session id', session_id)}.jsonl"
        )

    def create(self, agent_id: str, *, start_seq: int = 0) -> Session:
        """Start a fresh session file. `start_seq` carries the agent's seq across sessions."""
        folder = self.agent_dir(agent_id)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        header = SessionHeader(session_id=new_session_id(), agent_id=agent_id, start_seq=start_seq)
        path = folder / f"{header.session_id}.jsonl"
        _append_line(path, header.model_dump_json().encode() + b"\n")
        return Session(path, header, [])


def entries_text(entries: Sequence[HistoryEntry]) -> str:
    """A plain transcript of entries, for summaries and human output."""
    lines = []
    for entry in entries:
        if isinstance(entry, MessageEntry):
            lines.append(f"{entry.role}: {entry.text}")
        else:
            lines.append(f"tool {entry.tool_name}({entry.args}) -> {entry.result}")
    return "\n".join(lines)
