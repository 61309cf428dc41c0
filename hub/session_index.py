"""The session index of an agent, `sessions/<agentId>/index.json`: per session key its
current session, title, counts, read markers, archived flag, write mode and members. A cache:
`scan` checks it against the session files (each file's header and last line) and rebuilds
what is missing or stale.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from hub.events import MAIN_SESSION, now_ms
from hub.jsonl_files import write_atomic
from hub.lanes import WriteMode
from hub.origin import ChannelRoute
from hub.sessions import UNCLEAN_SEQ_GAP, MessageEntry, SessionHeader, load_session

log = logging.getLogger("agenthub.sessions")

TITLE_CHARS = 60
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
    # The model chosen with `/model` (None: the agent's own).
    model: str | None = None
    members: list[str] = Field(default_factory=list)
    read: dict[str, ReadMarker] = Field(default_factory=dict)
    previous: list[str] = Field(default_factory=list)
    # The chat a channel session belongs to: where replies to any write in it go.
    route: ChannelRoute | None = None


class SessionIndex(_Record):
    version: int = 1
    sessions: dict[str, SessionMeta] = Field(default_factory=dict)
    # The highest seq given out when sessions were deleted (their files held the seqs): the
    # agent resumes past it, so no seq a client has seen is used again.
    seq_floor: int = 0


def make_title(text: str) -> str:
    """A title from a first message: its first line, trimmed to `TITLE_CHARS`."""
    line = " ".join(text.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


def scan(folder: Path, agent_id: str) -> tuple[dict[str, SessionMeta], int]:
    """Each key's metadata and the seq to resume from: the index, checked against every
    session file's header and last line (a key whose file is newer is recounted from it),
    and never below the index's `seq_floor`."""
    index = read_index(folder / "index.json")
    metas = index.sessions
    resume_seq = index.seq_floor
    known = {m.session_id for m in metas.values()}
    known |= {sid for m in metas.values() for sid in m.previous}
    current: dict[str, tuple[str, int]] = {}
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        summary = summarise(path)
        if summary is None:
            continue
        header, last_seq, resume = summary
        resume_seq = max(resume_seq, resume)
        key = header.session_key or MAIN_SESSION
        current[key] = (header.session_id, last_seq)
        meta = metas.get(key)
        if header.session_id in known:
            continue
        if meta is not None and header.session_id < meta.session_id:
            meta.previous.append(header.session_id)
            continue
        metas[key] = SessionMeta(
            session_key=key,
            session_id=header.session_id,
            created_at=header.created_at,
            mode=meta.mode if meta else "queue",
            members=meta.members if meta else [],
            previous=[*meta.previous, meta.session_id] if meta else [],
        )
    for key, meta in list(metas.items()):
        found = current.get(key)
        if found is None or found[0] != meta.session_id:
            if found is None:
                if meta.messages:  # else it was never written: nothing is lost
                    log.warning("agent %s: session of %s is gone from disk", agent_id, key)
                del metas[key]
            continue
        if found[1] != meta.last_seq:
            recount(folder, meta)
    return metas, resume_seq


def recount(folder: Path, meta: SessionMeta) -> None:
    """Refresh `meta`'s counts and title from its session file."""
    try:
        session = load_session(folder / f"{meta.session_id}.jsonl")
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


class IndexFile:
    """`index.json` kept in step with `snapshot()`: written atomically (a temporary file renamed
    over it) right away, or once a moment after a burst of changes."""

    def __init__(
        self,
        path: Path,
        snapshot: Callable[[], SessionIndex],
        make_dir: Callable[[], Path],
        *,
        delay: float,
    ) -> None:
        self.path = path
        self._snapshot = snapshot
        self._make_dir = make_dir
        self._delay = delay
        self._handle: asyncio.TimerHandle | None = None

    def schedule(self) -> None:
        """Write a moment from now (at once outside an event loop)."""
        if self._handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.write()
            return
        self._handle = loop.call_later(self._delay, self.write)

    def write(self) -> None:
        """Write now; a failure is logged (the session files stay the truth)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        data = self._snapshot().model_dump_json(by_alias=True).encode()
        try:
            self._make_dir()
            write_atomic(self.path, data)
        except OSError as exc:
            log.warning("%s: could not save the session index (%s)", self.path, exc)


def read_index(path: Path) -> SessionIndex:
    try:
        return SessionIndex.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return SessionIndex()
    except (OSError, ValidationError) as exc:
        log.warning("%s: unreadable session index, rebuilding it from the files (%s)", path, exc)
        return SessionIndex()


def summarise(path: Path) -> tuple[SessionHeader, int, int] | None:
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
