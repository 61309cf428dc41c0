"""SessionRegistry: an agent's conversations by session key, loaded on demand.

Each key has a current session file (`sessions/<agentId>/<sessionId>.jsonl`, the key in its
header) and maybe older ones (`new` keeps them readable). What a listing needs without
reading every file (title, message count, last activity, read markers, archived, the key's
write mode, who wrote there) is kept per key in `sessions/<agentId>/index.json`, rewritten
atomically a moment after changes. The files stay the truth (`hub.session_index.scan`), and the
agent's seq resumes past the highest one (see `Session.resume_seq`).

`delete` removes a key's files and entry for good; the key, written to again, starts afresh.

At most `loaded` sessions are held in memory; the least recently used idle one is unloaded and
read again on demand. A session file deleted on disk while loaded is noticed on the next use:
the key then starts a new session (a run writing at that moment fails with code `storage`).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path

from hub.events import MAIN_SESSION, AgentEnd, AgentEvent, MessageEnd
from hub.jsonl_files import fsync_dir
from hub.lanes import WriteMode
from hub.origin import ChannelRoute
from hub.session_index import IndexFile, ReadMarker, SessionIndex, SessionMeta, make_title, scan
from hub.sessions import MessageEntry, Session, SessionStore, load_session

log = logging.getLogger("agenthub.sessions")

FLUSH_DELAY = 1.0
DEPARTED_KEPT = 64


class SessionRegistry:
    """The session keys of one agent, their current sessions and their index."""

    def __init__(self, store: SessionStore, agent_id: str, *, loaded: int = 256) -> None:
        self.store = store
        self.agent_id = agent_id
        self.folder = store.agent_dir(agent_id)
        self.index_path = self.folder / "index.json"
        self._index = IndexFile(
            self.index_path,
            lambda: SessionIndex(sessions=self._meta, seq_floor=self.seq_floor),
            lambda: store.make_agent_dir(agent_id),
            delay=FLUSH_DELAY,
        )
        # Set by the agent: its current seq (new sessions start there) and whether a key has
        # a run going (its session is never unloaded then).
        self.last_seq: Callable[[], int] = lambda: self.resume_seq
        self.busy: Callable[[str], bool] = lambda key: False
        self._limit = max(1, loaded)
        self._loaded: OrderedDict[str, Session] = OrderedDict()
        self._meta, self.resume_seq = scan(self.folder, agent_id)
        self.seq_floor = self.resume_seq
        # Keys deleted lately, with what they were: who could see them hears of the deletion.
        self.departed: OrderedDict[str, SessionMeta] = OrderedDict()

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
            meta.mode, meta.members, meta.model = old.mode, old.members, old.model
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

    def delete(self, key: str) -> list[Path]:
        """Remove `key`'s session files and index entry; returns the files removed. The next
        seq counts as given out (the caller announces the deletion with it). Raises `OSError`
        when a file cannot be removed (the entry then stays)."""
        meta = self._meta[key]
        removed = remove_files(session_files(self.folder, meta))
        del self._meta[key]
        self._loaded.pop(key, None)
        self.departed[key] = meta
        while len(self.departed) > DEPARTED_KEPT:
            self.departed.popitem(last=False)
        self.seq_floor = max(self.seq_floor, self.last_seq() + 1)
        self.flush()
        return removed

    def set_mode(self, key: str, mode: WriteMode) -> None:
        self.current(key)
        self._meta[key].mode = mode
        self.flush()

    def model_of(self, key: str) -> str | None:
        meta = self._meta.get(key)
        return meta.model if meta is not None else None

    def set_model(self, key: str, name: str | None) -> None:
        self.current(key)
        self._meta[key].model = name
        self.flush()

    def join(self, key: str, member: str, route: ChannelRoute | None = None) -> None:
        """Record that `member` (an identity) wrote in `key`: it may see this session. A
        chat message's `route` (not `main`'s) makes the chat the session's own."""
        self.current(key)
        meta = self._meta[key]
        if member not in meta.members:
            meta.members.append(member)
            self._schedule_flush()
        if route is not None and key != MAIN_SESSION and meta.route is None:
            meta.route = route.model_copy(update={"reply_to_message_id": None})
            self._schedule_flush()

    def chat_of(self, key: str) -> ChannelRoute | None:
        """The chat session `key` belongs to, if it is a chat's."""
        meta = self._meta.get(key)
        return meta.route if meta is not None else None

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

    def flush(self) -> None:
        """Write the index now."""
        self._index.write()

    def _schedule_flush(self) -> None:
        self._index.schedule()


def session_files(folder: Path, meta: SessionMeta) -> list[Path]:
    """Every session file of a key: the older ones, then the current one."""
    return [folder / f"{sid}.jsonl" for sid in (*meta.previous, meta.session_id)]


def remove_files(paths: list[Path]) -> list[Path]:
    """Unlink `paths` (those already gone are skipped), durably; returns the ones removed."""
    removed = []
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed.append(path)
    if removed:
        fsync_dir(removed[0].parent)
    return removed
