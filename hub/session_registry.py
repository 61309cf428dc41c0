"""SessionRegistry: an agent's conversations by session key, loaded on demand.

Each key has a current session file (`sessions/<agentId>/<sessionId>.jsonl`, the key in its
header) and maybe older ones (`new` keeps them readable). What a listing needs without
reading every file (title, message count, last activity, read markers, archived, the key's
write mode, who wrote there) is kept per key in `sessions/<agentId>/index.json`, rewritten
atomically a moment after changes. The files stay the truth: at start-up every file's header
and last line are read, a key whose file is newer than the index is recounted from its file,
and the agent's seq resumes past the highest one (see `Session.resume_seq`).

At most `loaded` sessions are held in memory; the least recently used idle one is unloaded and
read again on demand. A session file deleted on disk while loaded is noticed on the next use:
the key then starts a new session (a run writing at that moment fails with code `storage`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from hub.events import MAIN_SESSION, AgentEnd, AgentEvent, MessageEnd, now_ms
from hub.lanes import WriteMode
from hub.sessions import (
    UNCLEAN_SEQ_GAP,
    MessageEntry,
    Session,
    SessionHeader,
    SessionStore,
    load_session,
)

log = logging.getLogger("agenthub.sessions")

TITLE_CHARS = 60
FLUSH_DELAY = 1.0
_TAIL_BYTES = 65_536


class _Record(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, serialize_by_alias=True
    )


class ReadMarker(_Record):
    """How far one viewer has read: a seq, and how many messages were there up to it."""

    seq: int
    messages: int


class SessionMeta(_Record):
    """What the index keeps about one session key."""

    session_key: str
    session_id: str
    title: str = ""
    renamed: bool = False
    created_at: int = Field(default_factory=now_ms)
    updated_at: int = Field(default_factory=now_ms)
    messages: int = 0
    last_seq: int = 0
    archived: bool = False
    mode: WriteMode = "queue"
    members: list[str] = Field(default_factory=list)
    read: dict[str, ReadMarker] = Field(default_factory=dict)
    previous: list[str] = Field(default_factory=list)


class SessionIndex(_Record):
    version: int = 1
    sessions: dict[str, SessionMeta] = Field(default_factory=dict)


def make_title(text: str) -> str:
    """A title from a first message: its first line, trimmed to `TITLE_CHARS`."""
    line = " ".join(text.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


class SessionRegistry:
    """The session keys of one agent, their current sessions and their index."""

    def __init__(self, store: SessionStore, agent_id: str, *, loaded: int = 256) -> None:
        self.store = store
        self.agent_id = agent_id
        self.folder = store.agent_dir(agent_id)
        self.index_path = self.folder / "index.json"
        self.resume_seq = 0
        # Set by the agent: its current seq (new sessions start there) and whether a key has
        # a run going (its session is never unloaded then).
        self.last_seq: Callable[[], int] = lambda: self.resume_seq
        self.busy: Callable[[str], bool] = lambda key: False
        self._limit = max(1, loaded)
        self._meta: dict[str, SessionMeta] = {}
        self._loaded: OrderedDict[str, Session] = OrderedDict()
        self._flush_handle: asyncio.TimerHandle | None = None
        self._scan()

    # -- reading ----------------------------------------------------------------------------

    def __contains__(self, key: str) -> bool:
        return key in self._meta

    def __len__(self) -> int:
        return len(self._meta)

    def session_keys(self) -> list[str]:
        return list(self._meta)

    def meta(self, key: str) -> SessionMeta | None:
        return self._meta.get(key)

    def metas(self) -> Iterator[SessionMeta]:
        return iter(list(self._meta.values()))

    @property
    def loaded_count(self) -> int:
        return len(self._loaded)

    def mode(self, key: str) -> WriteMode:
        meta = self._meta.get(key)
        return meta.mode if meta is not None else "queue"

    def current(self, key: str) -> Session:
        """The key's current session: in memory, read from disk, or created."""
        session = self._loaded.get(key)
        if session is not None:
            if not session.written or session.path.exists():
                self._loaded.move_to_end(key)
                return session
            log.warning(
                "agent %s: session %s (%s) was deleted on disk; starting a new one",
                self.agent_id,
                session.session_id,
                key,
            )
            del self._loaded[key]
            return self._start(key, gone=True, lazy=True)
        meta = self._meta.get(key)
        if meta is None:
            return self._start(key, lazy=True)
        path = self.folder / f"{meta.session_id}.jsonl"
        if not meta.messages and not path.exists():
            return self._start(key, lazy=True)  # unloaded before its first entry
        try:
            session = load_session(self.folder / f"{meta.session_id}.jsonl")
        except (OSError, ValueError) as exc:
            log.warning(
                "agent %s: session of %s unreadable (%s); starting a new one",
                self.agent_id,
                key,
                exc,
            )
            return self._start(key, gone=True, lazy=True)
        self._remember(key, session)
        return session

    def open(self, key: str, session_id: str) -> Session:
        """A session of `key` by id (its current one or an older one); KeyError if the key
        never had it."""
        meta = self._meta.get(key)
        if meta is None or (session_id != meta.session_id and session_id not in meta.previous):
            raise KeyError(session_id)
        if session_id == meta.session_id:
            return self.current(key)
        return self.store.open(self.agent_id, session_id)

    def unread(self, key: str, viewer: str) -> int:
        meta = self._meta.get(key)
        if meta is None:
            return 0
        marker = meta.read.get(viewer)
        return meta.messages - (marker.messages if marker is not None else 0)

    # -- changing ---------------------------------------------------------------------------

    def new(self, key: str, *, start_seq: int | None = None) -> Session:
        """A fresh session under `key`; the old one stays readable."""
        return self._start(key, start_seq=start_seq)

    def _start(
        self, key: str, *, start_seq: int | None = None, gone: bool = False, lazy: bool = False
    ) -> Session:
        """A new current session for `key`: written now, or (`lazy`, for a key that a first
        message brings about) with its first entry."""
        seq = self.last_seq() if start_seq is None else start_seq
        if lazy:
            session = self.store.prepare(self.agent_id, start_seq=seq, session_key=key)
        else:
            session = self.store.create(self.agent_id, start_seq=seq, session_key=key)
        old = self._meta.get(key)
        meta = SessionMeta(session_key=key, session_id=session.session_id, last_seq=seq)
        if old is not None:
            meta.mode, meta.members = old.mode, old.members
            kept = not gone and (self.folder / f"{old.session_id}.jsonl").exists()
            meta.previous = [*old.previous, *([old.session_id] if kept else [])]
        self._meta[key] = meta
        self._remember(key, session)
        self._schedule_flush()
        return session

    def rename(self, key: str, title: str) -> SessionMeta:
        meta = self._meta[key]
        meta.title, meta.renamed = make_title(title), True
        self.flush()
        return meta

    def archive(self, key: str, archived: bool = True) -> SessionMeta:
        meta = self._meta[key]
        meta.archived = archived
        self.flush()
        return meta

    def set_mode(self, key: str, mode: WriteMode) -> None:
        self.current(key)
        self._meta[key].mode = mode
        self.flush()

    def join(self, key: str, member: str) -> None:
        """Record that `member` (an identity) wrote in `key`: it may see this session."""
        self.current(key)
        meta = self._meta[key]
        if member not in meta.members:
            meta.members.append(member)
            self._schedule_flush()

    def mark_read(self, key: str, viewer: str, seq: int) -> ReadMarker:
        """`viewer` has read `key` up to `seq` (a marker never moves back)."""
        meta = self._meta[key]
        old = meta.read.get(viewer)
        if old is not None and old.seq >= seq:
            return old
        if seq >= meta.last_seq:
            count = meta.messages
        else:
            entries = self.current(key).entries
            count = sum(1 for e in entries if isinstance(e, MessageEntry) and e.seq <= seq)
        marker = ReadMarker(seq=seq, messages=count)
        meta.read[viewer] = marker
        self._schedule_flush()
        return marker

    def announced(self, event: AgentEvent) -> None:
        """Keep the index in step with what a run saved (called for every emitted event)."""
        meta = self._meta.get(event.session_key)
        if meta is None:
            return
        if isinstance(event, MessageEnd):
            meta.messages += 1
            meta.updated_at = event.ts
            meta.last_seq = event.seq
            if event.role == "user":
                meta.archived = False
                if not meta.title and not meta.renamed:
                    meta.title = make_title(event.text)
        elif isinstance(event, AgentEnd):
            meta.last_seq = event.seq
            self._schedule_flush()

    def _remember(self, key: str, session: Session) -> None:
        self._loaded[key] = session
        self._loaded.move_to_end(key)
        self.trim(keep=key)

    def trim(self, keep: str = MAIN_SESSION) -> None:
        """Unload the least recently used idle sessions beyond the bound (never `main`, `keep`
        or a session with a run going)."""
        if len(self._loaded) <= self._limit:
            return
        for old in list(self._loaded):
            if len(self._loaded) <= self._limit:
                break
            if old != keep and old != MAIN_SESSION and not self.busy(old):
                del self._loaded[old]

    # -- the index file ---------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        if self._flush_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._flush_handle = loop.call_later(FLUSH_DELAY, self.flush)

    def flush(self) -> None:
        """Write the index now (atomically: a temporary file renamed over it)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        data = SessionIndex(sessions=self._meta).model_dump_json(by_alias=True).encode()
        folder = self.store.make_agent_dir(self.agent_id)
        temporary = folder / "index.json.tmp"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            os.replace(temporary, self.index_path)
        except OSError as exc:
            log.warning("agent %s: could not save the session index (%s)", self.agent_id, exc)

    def _scan(self) -> None:
        """Read the index, then every session file's header and tail (see the module doc)."""
        index = _read_index(self.index_path)
        self._meta = index.sessions
        known = {m.session_id for m in self._meta.values()}
        known |= {sid for m in self._meta.values() for sid in m.previous}
        current: dict[str, tuple[str, int]] = {}
        for path in sorted(self.folder.glob("*.jsonl")) if self.folder.is_dir() else []:
            summary = _summarise(path)
            if summary is None:
                continue
            header, last_seq, resume = summary
            self.resume_seq = max(self.resume_seq, resume)
            key = header.session_key or MAIN_SESSION
            current[key] = (header.session_id, last_seq)
            meta = self._meta.get(key)
            if header.session_id in known:
                continue
            if meta is not None and header.session_id < meta.session_id:
                meta.previous.append(header.session_id)
                continue
            self._meta[key] = SessionMeta(
                session_key=key,
                session_id=header.session_id,
                created_at=header.created_at,
                mode=meta.mode if meta else "queue",
                members=meta.members if meta else [],
                previous=[*meta.previous, meta.session_id] if meta else [],
            )
        for key, meta in list(self._meta.items()):
            found = current.get(key)
            if found is None or found[0] != meta.session_id:
                if found is None:
                    if meta.messages:  # else it was never written: nothing is lost
                        log.warning("agent %s: session of %s is gone from disk", self.agent_id, key)
                    del self._meta[key]
                continue
            if found[1] != meta.last_seq or not index.sessions:
                self._recount(meta)

    def _recount(self, meta: SessionMeta) -> None:
        try:
            session = load_session(self.folder / f"{meta.session_id}.jsonl")
        except (OSError, ValueError) as exc:
            log.warning("%s", exc)
            return
        messages = [e for e in session.entries if isinstance(e, MessageEntry)]
        meta.messages = len(messages)
        meta.last_seq = session.last_seq
        if messages:
            meta.updated_at = messages[-1].ts
        first_user = next((m for m in messages if m.role == "user"), None)
        if not meta.renamed:
            meta.title = make_title(first_user.text) if first_user else ""


def _read_index(path: Path) -> SessionIndex:
    try:
        return SessionIndex.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return SessionIndex()
    except (OSError, ValidationError) as exc:
        log.warning("%s: unreadable session index, rebuilding it from the files (%s)", path, exc)
        return SessionIndex()


def _summarise(path: Path) -> tuple[SessionHeader, int, int] | None:
    """A session file's header, last seq and resume seq, from its first and last lines."""
    try:
        with path.open("rb") as handle:
            header = SessionHeader.model_validate_json(handle.readline())
            size = os.fstat(handle.fileno()).st_size
            start = max(0, size - _TAIL_BYTES)
            handle.seek(start)
            tail = handle.read()
    except (OSError, ValidationError) as exc:
        log.warning("%s: skipping a session file without a readable header (%s)", path, exc)
        return None
    lines = tail.split(b"\n")[:-1]  # the last piece is empty or a torn line
    if start > 0:
        lines = lines[1:]  # may start mid-line
    for raw in reversed(lines):
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("type") == "session":
            break
        if isinstance(data, dict) and isinstance(data.get("seq"), int):
            seq: int = data["seq"]
            return header, seq, seq if data.get("type") == "run" else seq + UNCLEAN_SEQ_GAP
        if start > 0:
            break
    if start > 0 or len(lines) > 1:
        session = load_session(path)  # rare: an unusual tail; read it whole
        return header, session.last_seq, session.resume_seq
    return header, header.start_seq, header.start_seq
