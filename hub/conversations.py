"""Session operations for clients: list, new, rename, archive, delete, history, mark read,
mode.

Every operation takes the `Viewer` who asks. The owner sees every session; anyone else only
the sessions they wrote in (or were given by `new`). A session a viewer may not see is refused
with `forbidden` whether or not it exists, so a refusal tells nothing about other people's
conversations; `unknown_session` is only said about sessions the viewer could see.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from functools import partial
from typing import Annotated

from pydantic import Field

from hub.agent import AsyncAgent
from hub.errors import CodedError
from hub.events import MAIN_SESSION, SessionDeleted
from hub.lanes import WriteMode
from hub.media_store import MediaStore, referenced_ids
from hub.scopes import ConversationConfig, Viewer, check_session_key
from hub.session_index import SessionMeta
from hub.session_registry import session_files
from hub.sessions import HistoryEntry, Session
from hub.wire import WireModel

log = logging.getLogger("agenthub.sessions")


class UnknownSessionError(CodedError):
    code = "unknown_session"


class ForbiddenSessionError(CodedError):
    code = "forbidden"


class SessionInfo(WireModel):
    """One row of `sessions.list`."""

    session_key: str
    session_id: str
    title: str
    updated_at: int
    messages: int
    unread: int
    busy: bool
    archived: bool = False
    mode: WriteMode = "queue"


class SessionsPage(WireModel):
    """Sessions, most recently active first; `total` counts every visible one."""

    sessions: list[SessionInfo]
    total: int
    offset: int


class NewSession(WireModel):
    session_key: str
    session_id: str


class DeletedSession(WireModel):
    """What `sessions.delete` removed: the session files of the key (its current session and
    older ones) and the stored images no other session names. `schedules`: schedules that
    still run in this key (their next fire starts it afresh)."""

    session_key: str
    files_removed: int
    images_removed: int
    schedules: list[str] = Field(default_factory=list)


class SessionHistory(WireModel):
    session_key: str
    session_id: str
    last_seq: int
    entries: list[HistoryEntry]


PageLimit = Annotated[int, Field(ge=1, le=500)]


class Conversations:
    """The session operations of every agent of a hub."""

    def __init__(self, agents: dict[str, AsyncAgent], config: ConversationConfig) -> None:
        self._agents = agents
        self.config = config

    # -- visibility -------------------------------------------------------------------------

    def _ids(self, viewer: Viewer) -> set[str]:
        ids = {viewer.reader_id}
        if viewer.identity:
            ids |= self.config.same_person(viewer.identity)
        return ids

    def may_see(self, meta: SessionMeta | None, viewer: Viewer) -> bool:
        if viewer.owner:
            return True
        return meta is not None and bool(self._ids(viewer) & set(meta.members))

    def check_visible(self, agent: AsyncAgent, viewer: Viewer, key: str) -> None:
        """Raise unless session `key` exists and `viewer` may see it (the owner's `main`
        always exists)."""
        if key != MAIN_SESSION or not viewer.owner:
            self._meta(agent, viewer, key)

    def _meta(self, agent: AsyncAgent, viewer: Viewer, key: str) -> SessionMeta:
        """The visible session `key`, or a refusal that leaks nothing."""
        check_session_key(key)
        meta = agent.sessions.meta(key)
        if not self.may_see(meta, viewer):
            raise ForbiddenSessionError(f"session {key!r} is not yours to see")
        if meta is None:
            raise UnknownSessionError(
                f"no session {key!r} for agent {agent.agent_id!r} (deleted, or never started); "
                "pick one from the session list (`agenthub ctl sessions`, or the sessions panel)"
            )
        return meta

    def check_write(self, agent: AsyncAgent, viewer: Viewer, key: str) -> None:
        """Whether `viewer` may write to `key` (a new key: owners only; `main` for a guest
        only once they take part in it)."""
        check_session_key(key)
        if viewer.owner:
            return
        if not self.may_see(agent.sessions.meta(key), viewer):
            raise ForbiddenSessionError(f"session {key!r} is not yours to write to")

    def _info(self, agent: AsyncAgent, meta: SessionMeta, viewer: Viewer) -> SessionInfo:
        return SessionInfo(
            session_key=meta.session_key,
            session_id=meta.session_id,
            title=meta.title,
            updated_at=meta.updated_at,
            messages=meta.messages,
            unread=agent.sessions.unread(meta.session_key, viewer.reader_id),
            busy=agent.session_busy(meta.session_key),
            archived=meta.archived,
            mode=meta.mode,
        )

    # -- operations -------------------------------------------------------------------------

    def list(
        self,
        agent: AsyncAgent,
        viewer: Viewer,
        *,
        offset: int = 0,
        limit: int = 100,
        archived: bool = False,
    ) -> SessionsPage:
        """The sessions `viewer` may see, newest activity first, `limit` from `offset`."""
        visible = [
            meta
            for meta in agent.sessions.metas()
            if meta.archived == archived and self.may_see(meta, viewer)
        ]
        visible.sort(key=lambda m: (m.updated_at, m.session_key), reverse=True)
        page = visible[max(0, offset) : max(0, offset) + max(0, limit)]
        return SessionsPage(
            sessions=[self._info(agent, meta, viewer) for meta in page],
            total=len(visible),
            offset=offset,
        )

    async def new(
        self, agent: AsyncAgent, viewer: Viewer, session_key: str | None = None
    ) -> NewSession:
        """A fresh session under `session_key` (the old one stays readable); without a key,
        a new web session the viewer takes part in."""
        if session_key is None:
            session_key = f"web:{secrets.token_hex(6)}"
        elif viewer.owner:
            check_session_key(session_key)
        else:
            self._meta(agent, viewer, session_key)
        session = await agent.new_session(session_key)
        agent.sessions.join(session_key, viewer.reader_id)
        return NewSession(session_key=session_key, session_id=session.session_id)

    def rename(self, agent: AsyncAgent, viewer: Viewer, key: str, title: str) -> SessionInfo:
        self._meta(agent, viewer, key)
        if not title.strip():
            raise CodedError("a title needs at least one visible character", "invalid_params")
        return self._info(agent, agent.sessions.rename(key, title), viewer)

    def archive(
        self, agent: AsyncAgent, viewer: Viewer, key: str, archived: bool = True
    ) -> SessionInfo:
        self._meta(agent, viewer, key)
        if key == MAIN_SESSION and archived:
            raise CodedError("main is the owner's conversation; it cannot be archived", "forbidden")
        return self._info(agent, agent.sessions.archive(key, archived), viewer)

    async def delete(
        self, agent: AsyncAgent, viewer: Viewer, key: str, media: MediaStore
    ) -> DeletedSession:
        """Delete `key` for good (whoever may archive it may delete it): its session files
        and index entry, then the stored images no remaining session or queued turn names;
        every client hears `session_deleted`. A session answering (or between two turns) is
        refused with `busy`: a run would keep writing to the files, and stopping it is the
        person's call (stopping also denies what it waits approval for). Files are read in
        worker threads: a large history does not hold up the hub."""
        if key == MAIN_SESSION and viewer.owner:
            raise _main_kept()
        files = session_files(agent.sessions.folder, self._meta(agent, viewer, key))
        try:
            images = await asyncio.to_thread(referenced_ids, files)
        except OSError as exc:
            log.warning("agent %s: could not read %s for its images (%s)", agent.agent_id, key, exc)
            images = set()  # the start-up sweep removes them
        removed = self._remove(agent, viewer, key)
        try:
            gone = await media.remove_unnamed(
                agent.agent_id, images, agent.sessions.folder, partial(_held_images, agent)
            )
        except OSError as exc:
            log.warning("agent %s: images of %s kept for now (%s)", agent.agent_id, key, exc)
            gone = []
        log.info(
            "agent %s: deleted session %s (%d files, %d images)",
            agent.agent_id,
            key,
            removed,
            len(gone),
        )
        return DeletedSession(session_key=key, files_removed=removed, images_removed=len(gone))

    def _remove(self, agent: AsyncAgent, viewer: Viewer, key: str) -> int:
        """The files of `key` removed (their count) and the deletion announced, unless
        (checked again, in the same step) it is gone, `main`, or answering."""
        self._meta(agent, viewer, key)
        if key == MAIN_SESSION:
            raise _main_kept()
        lane = agent.lanes.get(key)
        if lane is not None and (lane.busy or lane.lock.locked()):
            raise CodedError(
                "this conversation is answering; stop the reply (or wait for it to end), "
                "then delete it",
                "busy",
            )
        try:
            removed = agent.sessions.delete(key)
        except OSError as exc:
            raise CodedError(
                f"could not delete the conversation's files ({exc.strerror or exc}); "
                "check the data directory's permissions and try again",
                "storage",
            ) from None
        deletion = f"del-{secrets.token_hex(6)}"
        agent.events.announce(
            lambda seq: SessionDeleted(
                agent_id=agent.agent_id, run_id=deletion, seq=seq, session_key=key
            )
        )
        return len(removed)

    def set_mode(self, agent: AsyncAgent, viewer: Viewer, key: str, mode: WriteMode) -> SessionInfo:
        """The session's default write mode."""
        meta = self._meta(agent, viewer, key)
        agent.sessions.set_mode(key, mode)
        agent.lane(key).mode = mode
        return self._info(agent, meta, viewer)

    def mark_read(self, agent: AsyncAgent, viewer: Viewer, key: str, seq: int) -> SessionInfo:
        meta = self._meta(agent, viewer, key)
        agent.sessions.mark_read(key, viewer.reader_id, seq)
        return self._info(agent, meta, viewer)

    def history(
        self,
        agent: AsyncAgent,
        viewer: Viewer,
        key: str = MAIN_SESSION,
        *,
        limit: int | None = 100,
        before: int | None = None,
        after: int | None = None,
        session_id: str | None = None,
    ) -> SessionHistory:
        """Entries of `key`'s current session (or its older `session_id`), by seq range."""
        if key == MAIN_SESSION and viewer.owner and agent.sessions.meta(key) is None:
            session: Session = agent.session  # a fresh hub: main exists from the start
        else:
            meta = self._meta(agent, viewer, key)
            try:
                session = agent.sessions.open(key, session_id or meta.session_id)
            except (KeyError, OSError, ValueError):
                raise UnknownSessionError(
                    f"session {key!r} has no readable session {session_id!r}"
                ) from None
        return SessionHistory(
            session_key=key,
            session_id=session.session_id,
            last_seq=agent.last_seq,
            entries=session.history(limit=limit, before=before, after=after),
        )


def _main_kept() -> CodedError:
    return CodedError(
        "main is the owner's conversation; it cannot be deleted (start a new chat instead)",
        "forbidden",
    )


def _held_images(agent: AsyncAgent) -> set[str]:
    """The stored images of the turns queued or running in any of `agent`'s sessions."""
    return {
        image.ref.id
        for lane in agent.lanes.all()
        for turn in (lane.current, *lane.turns)
        if turn is not None
        for image in turn.images
    }
