"""Sessions persisted as JSONL: `<data-dir>/sessions/<agentId>/<sessionId>.jsonl`.

The first line is a `SessionHeader`; then one entry per message, tool call, compaction and
finished run, and one per message accepted for a run (so a restart can answer it). Each append
is written whole and fsynced before `append` returns. A crash can tear only the line being
written: on load a torn (unterminated) or unparsable line is skipped with a
warning, and the next append first cuts a torn tail off so it never glues onto a good entry.
Loading never modifies the file, so a reader (e.g. `agenthub ctl`) is safe beside the writer.

Session ids sort by creation time, so the current session of an agent is the last file.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, JsonValue, TypeAdapter, ValidationError

from hub.attachments import AttachmentRef
from hub.events import Role, RunStatus, now_ms
from hub.jsonl_files import append_line, create_file, fsync_dir, make_private_dir
from hub.origin import ChannelRoute, Origin
from hub.wire import WireModel

log = logging.getLogger("agenthub.sessions")

FORMAT_VERSION = 1
# After a crash the events a run emitted past its last persisted entry are unknown; the agent
# resumes its seq this far ahead so no seq a client has seen is ever reused.
UNCLEAN_SEQ_GAP = 1_000_000


class SessionHeader(WireModel):
    type: Literal["session"] = "session"
    version: int = FORMAT_VERSION
    session_id: str
    agent_id: str
    created_at: int = Field(default_factory=now_ms)
    start_seq: int = 0
    # The conversation this file belongs to; files written before keys existed are `main`'s.
    session_key: str | None = None


class SessionGoneError(FileNotFoundError):
    """A loaded session's file was deleted on disk: nothing more can be saved to it."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            "this conversation's file was deleted on disk; the next message starts a new session"
        )
        self.path = path

    def __str__(self) -> str:
        return str(self.args[0])


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
    # Images the user sent with the message (stored under the data directory).
    attachments: tuple[AttachmentRef, ...] = Field(default=(), exclude_if=lambda refs: not refs)


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


class RunEntry(WireModel):
    """A finished run: its `agent_end` seq and status. The last entry of a clean session."""

    type: Literal["run"] = "run"
    id: str
    run_id: str
    seq: int
    status: RunStatus
    error_code: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    ts: int = Field(default_factory=now_ms)


class AcceptedEntry(WireModel):
    """A message `write` accepted for run `run_id` (its returned id), saved when accepted, so
    a restart answers it if that run never started (`hub.recovery`). Pieces merged into one
    turn share its `run_id`; `steer` ones were handed to the running run `run_id`. It has no
    event of its own: `seq` is the agent's last seq when it was accepted."""

    type: Literal["accepted"] = "accepted"
    id: str
    run_id: str
    seq: int
    text: str
    origin: Origin
    route: ChannelRoute | None = None
    steer: bool = False
    # Images sent with it, stored under the media directory (`hub.attachments`).
    images: list[AttachmentRef] = Field(default_factory=list)
    ts: int = Field(default_factory=now_ms)

    def full_origin(self) -> Origin:
        return self.origin.model_copy(update={"route": self.route})


SessionEntry = Annotated[
    MessageEntry | ToolEntry | CompactionEntry | RunEntry | AcceptedEntry,
    Field(discriminator="type"),
]
HistoryEntry = MessageEntry | ToolEntry
_ENTRY: TypeAdapter[SessionEntry] = TypeAdapter(SessionEntry)
_ENTRIES: TypeAdapter[list[SessionEntry]] = TypeAdapter(list[SessionEntry])

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

    def __init__(
        self,
        path: Path,
        header: SessionHeader,
        entries: list[SessionEntry],
        *,
        written: bool = True,
    ) -> None:
        self.path = path
        self.header = header
        self.entries = entries
        # False until the file exists: its first append writes the header with the entry.
        self.written = written
        self._lock = asyncio.Lock()

    @property
    def session_id(self) -> str:
        return self.header.session_id

    @property
    def session_key(self) -> str:
        return self.header.session_key or "main"

    @property
    def last_seq(self) -> int:
        return max((entry.seq for entry in self.entries), default=self.header.start_seq)

    @property
    def resume_seq(self) -> int:
        """The seq an agent continues from: `last_seq` when the last run ended cleanly (or
        nothing ran), else `last_seq + UNCLEAN_SEQ_GAP`, past any seq emitted but not saved."""
        last = next((e for e in reversed(self.entries) if not isinstance(e, AcceptedEntry)), None)
        clean = last is None or isinstance(last, RunEntry)
        return self.last_seq if clean else self.last_seq + UNCLEAN_SEQ_GAP

    async def append(self, entry: SessionEntry) -> None:
        """Write one entry durably (write + fsync off the event loop), in call order.

        Once started, an append completes even if the caller is cancelled (e.g. by `abort()`),
        so the file and `entries` never disagree."""
        await asyncio.shield(self._append(entry))

    async def _append(self, entry: SessionEntry) -> None:
        line = _ENTRY.dump_json(entry) + b"\n"
        async with self._lock:
            try:
                if self.written:
                    await asyncio.to_thread(append_line, self.path, line, create=False)
                else:
                    head = self.header.model_dump_json().encode() + b"\n"
                    await asyncio.to_thread(create_file, self.path, head + line)
                    self.written = True
            except FileNotFoundError:
                log.error("%s: the session file was deleted on disk", self.path)
                raise SessionGoneError(self.path) from None
            except OSError:
                log.exception("%s: could not append a %s entry", self.path, entry.type)
                raise
            self.entries.append(entry)

    def history(
        self, *, limit: int | None = None, before: int | None = None, after: int | None = None
    ) -> list[HistoryEntry]:
        """Messages and tool entries with `after < seq < before`, the last `limit` of them."""
        selected = [
            entry
            for entry in self.entries
            if isinstance(entry, MessageEntry | ToolEntry)
            and (before is None or entry.seq < before)
            and (after is None or entry.seq > after)
        ]
        if limit is None:
            return selected
        return selected[len(selected) - limit :] if 0 <= limit < len(selected) else selected

    def context(self) -> list[HistoryEntry]:
        """What the model sees: entries from the last compaction's first kept entry on."""
        start = 0
        for index, entry in enumerate(self.entries):
            if isinstance(entry, CompactionEntry):
                start = next(
                    (
                        i
                        for i, e in enumerate(self.entries)
                        if isinstance(e, MessageEntry | ToolEntry) and e.id == entry.first_kept_id
                    ),
                    index + 1,
                )
        return [e for e in self.entries[start:] if isinstance(e, MessageEntry | ToolEntry)]

    def last_compaction(self) -> CompactionEntry | None:
        for entry in reversed(self.entries):
            if isinstance(entry, CompactionEntry):
                return entry
        return None


def load_session(path: Path) -> Session:
    """Read a session file, skipping (with a warning) any line that does not parse and a torn
    last line. The file is not modified."""
    lines = path.read_bytes().split(b"\n")
    torn = lines.pop()  # what follows the last newline: nothing, or a line a crash tore
    if torn:
        log.warning("%s:%d: skipping a torn last line (%d bytes)", path, len(lines) + 1, len(torn))
    loaded = _load_whole(lines) or _load_line_by_line(path, lines)
    if loaded is None:
        raise ValueError(f"{path}: no session header")
    return Session(path, *loaded)


def _load_whole(lines: list[bytes]) -> tuple[SessionHeader, list[SessionEntry]] | None:
    """Every line valid: validate them in one call (the common case, and much faster)."""
    if not lines:
        return None
    try:
        header = SessionHeader.model_validate_json(lines[0])
        entries = _ENTRIES.validate_json(b"[" + b",".join(lines[1:]) + b"]")
    except ValidationError:
        return None
    # Two entries glued on one line would pass as two: only a line per entry counts.
    return (header, entries) if len(entries) == len(lines) - 1 else None


def _load_line_by_line(
    path: Path, lines: list[bytes]
) -> tuple[SessionHeader, list[SessionEntry]] | None:
    header: SessionHeader | None = None
    entries: list[SessionEntry] = []
    for number, raw in enumerate(lines, start=1):
        try:
            if header is None:
                header = SessionHeader.model_validate_json(raw)
            else:
                entries.append(_ENTRY.validate_json(raw))
        except ValidationError as exc:
            log.warning(
                "%s:%d: skipping unreadable line (%s)", path, number, exc.errors()[0]["msg"]
            )
    return (header, entries) if header is not None else None


class SessionStore:
    """All sessions under `<data-dir>/sessions`, one folder per agent."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "sessions"

    def agent_dir(self, agent_id: str) -> Path:
        return self.root / validate_id("agent id", agent_id)

    def make_agent_dir(self, agent_id: str) -> Path:
        """The agent's folder, created (with `sessions/`) owner-only, mode 0700."""
        folder = self.agent_dir(agent_id)
        make_private_dir(self.root)
        make_private_dir(folder)
        return folder

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

    def _new_header(
        self, agent_id: str, start_seq: int, session_key: str | None
    ) -> tuple[Path, SessionHeader]:
        header = SessionHeader(
            session_id=new_session_id(),
            agent_id=agent_id,
            start_seq=start_seq,
            session_key=session_key,
        )
        return self.make_agent_dir(agent_id), header

    def prepare(self, agent_id: str, *, start_seq: int, session_key: str) -> Session:
        """A new session whose file is written with its first entry (nothing on disk yet)."""
        folder, header = self._new_header(agent_id, start_seq, session_key)
        return Session(folder / f"{header.session_id}.jsonl", header, [], written=False)

    def create(
        self, agent_id: str, *, start_seq: int = 0, session_key: str | None = None
    ) -> Session:
        """Start a fresh session file. `start_seq` carries the agent's seq across sessions."""
        folder, header = self._new_header(agent_id, start_seq, session_key)
        path = folder / f"{header.session_id}.jsonl"
        append_line(path, header.model_dump_json().encode() + b"\n", create=True)
        fsync_dir(folder)
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
