"""The outbox journal: every block or edit bound for a chat app, recorded before it is
attempted and marked done once the chat app confirmed it (or refused it for good).

`<data-dir>/outbox.jsonl` (0600, in a 0700 folder), one JSON record a line, each appended
and fsynced on its own:

    {"op": "put", "entry": {...}}               a new entry: its route, kind, text, time
    {"op": "note", "id": 7, "facts": {...},     what delivery learnt on the way (the floor
     "chat": {...}}                              of an attempt, a message id, a final text),
                                                 and optionally about the entry's chat
    {"op": "done", "id": 7, "outcome": "..."}   confirmed, or ended for good (the reason)
    {"op": "chat", "channel": "telegram",       what is known about a chat beyond its
     "chat_id": "42", "facts": {...}}            entries (written by compaction)

Facts about a chat (e.g. the newest message id confirmed there: the floor from which a
restarted process probes for a send whose answer it never got) outlive the chat's entries:
compaction keeps them. An entry noted `in_flight` (a request went out and its outcome is not
known yet) is resumed first in its chat: nothing new goes to a chat before the last process's
unanswered request there is settled, so a probe for it cannot mistake a new message for it.

An append-only file rather than SQLite: one writer, a handful of pending records, and the
session files' durable-append helpers already cover the hard parts (fsync per record, a torn
last line cut before the next append, the directory entry made durable). On open, a line
that does not parse is skipped (the rest is kept; one warning says how many), and the file
is compacted: rewritten with only the pending entries, fsynced, renamed over the old one.
It is compacted again whenever `compact_after` entries were done since.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from hub.jsonl_files import append_line, make_private_dir, write_atomic
from hub.origin import ChannelRoute

log = logging.getLogger("agenthub.channels")

# `reply` / `send`: a Markdown block (the first of a run replies to the user's message);
# `live`: one message of a reply shown live (its facts say how far it got).
EntryKind = Literal["reply", "send", "live"]
Facts = dict[str, JsonValue]
ChatKey = tuple[str, str]  # (channel, chat_id)
# The fact a plugin notes True while a request of the entry is out with its outcome unknown.
IN_FLIGHT = "in_flight"


class OutboxEntry(BaseModel):
    """One pending delivery. `at` (wall clock) is when it was recorded: a retry deadline
    counts from it, across restarts."""

    model_config = ConfigDict(extra="forbid")

    id: int
    route: ChannelRoute
    kind: EntryKind
    text: str = ""
    plain: bool = False
    at: float
    facts: Facts = Field(default_factory=dict)


class _Put(BaseModel):
    model_config = ConfigDict(extra="forbid")
    op: Literal["put"]
    entry: OutboxEntry


class _Note(BaseModel):
    model_config = ConfigDict(extra="forbid")
    op: Literal["note"]
    id: int
    facts: Facts
    chat: Facts | None = None


class _Chat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    op: Literal["chat"]
    channel: str
    chat_id: str
    facts: Facts


class _Done(BaseModel):
    model_config = ConfigDict(extra="forbid")
    op: Literal["done"]
    id: int
    outcome: str


class Ticket:
    """One entry while it is delivered: `note` records facts durably before they are relied
    on, `done` ends the entry."""

    def __init__(self, store: OutboxStore, entry: OutboxEntry) -> None:
        self._store = store
        self.entry = entry

    @property
    def facts(self) -> Facts:
        return self.entry.facts

    @property
    def at(self) -> float:
        return self.entry.at

    @property
    def chat(self) -> Facts:
        """What is known about the entry's chat (kept after its entries are done)."""
        return self._store.chat(self.entry.route)

    @property
    def in_flight(self) -> bool:
        return self.entry.facts.get(IN_FLIGHT) is True

    @property
    def finished(self) -> bool:
        return self.entry.id not in self._store.entries

    def note(self, **facts: JsonValue) -> None:
        self._store.note(self.entry, facts)

    def note_with_chat(self, facts: Facts, chat: Facts | None) -> None:
        """Record `facts` about this entry and `chat` facts about its chat, in one record."""
        self._store.note(self.entry, facts, chat)

    def done(self, outcome: str = "sent") -> None:
        self._store.done(self.entry, outcome)


class OutboxStore:
    """The pending entries and their journal; `path=None` keeps them in memory only."""

    def __init__(self, path: Path | None, *, compact_after: int = 200) -> None:
        self.path = path
        self.compact_after = compact_after
        self.entries: dict[int, OutboxEntry] = {}
        self.chats: dict[ChatKey, Facts] = {}
        self.skipped = 0
        self._next_id = 1
        self._done_since_compaction = 0
        if path is not None:
            make_private_dir(path.parent)
            self._load(path)
            self._compact()

    # -- recording --------------------------------------------------------------------------

    def put(
        self,
        route: ChannelRoute,
        kind: EntryKind,
        text: str = "",
        *,
        plain: bool = False,
        facts: Facts | None = None,
    ) -> Ticket:
        entry = OutboxEntry(
            id=self._next_id,
            route=route,
            kind=kind,
            text=text,
            plain=plain,
            at=time.time(),
            facts=dict(facts or {}),
        )
        self._next_id += 1
        self._append(_Put(op="put", entry=entry))
        self.entries[entry.id] = entry
        return Ticket(self, entry)

    def note(self, entry: OutboxEntry, facts: Facts, chat: Facts | None = None) -> None:
        if entry.id not in self.entries:
            return
        self._append(_Note(op="note", id=entry.id, facts=facts, chat=chat or None))
        entry.facts.update(facts)
        if chat:
            self.chats.setdefault(_key(entry.route), {}).update(chat)

    def chat(self, route: ChannelRoute) -> Facts:
        return self.chats.get(_key(route), {})

    def done(self, entry: OutboxEntry, outcome: str) -> None:
        if self.entries.pop(entry.id, None) is None:
            return
        self._append(_Done(op="done", id=entry.id, outcome=outcome))
        self._done_since_compaction += 1
        if self._done_since_compaction >= self.compact_after:
            self._compact()

    def tickets(self) -> list[Ticket]:
        """The pending entries, oldest first (in the order they were recorded)."""
        return [Ticket(self, self.entries[i]) for i in sorted(self.entries)]

    def backlog(self, channel: str) -> dict[str, tuple[int, float]]:
        """Per chat of `channel`: pending entries and the wall time of the oldest."""
        chats: dict[str, tuple[int, float]] = {}
        for entry in self.entries.values():
            if entry.route.channel != channel:
                continue
            count, oldest = chats.get(entry.route.chat_id, (0, entry.at))
            chats[entry.route.chat_id] = (count + 1, min(oldest, entry.at))
        return chats

    # -- the file ---------------------------------------------------------------------------

    def _append(self, record: _Put | _Note | _Done) -> None:
        if self.path is None:
            return
        line = (record.model_dump_json(exclude_none=True) + "\n").encode()
        try:
            append_line(self.path, line, create=False)
        except OSError as exc:
            # Delivery goes on from memory; only a crash before it ends could lose it now.
            log.error("%s: recording a delivery failed (%s)", self.path, exc)

    def _load(self, path: Path) -> None:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return
        for line in raw.splitlines():
            if line.strip():
                self._replay(line)
        if self.skipped:
            log.warning(
                "%s: skipped %d unreadable line(s) (corrupt or torn by a crash); kept the rest",
                path,
                self.skipped,
            )

    def _replay(self, line: bytes) -> None:
        try:
            data = json.loads(line)
            op = data.get("op") if isinstance(data, dict) else None
            if op == "put":
                entry = _Put.model_validate(data).entry
                self.entries[entry.id] = entry
                self._next_id = max(self._next_id, entry.id + 1)
            elif op == "note":
                note = _Note.model_validate(data)
                noted = self.entries.get(note.id)
                if noted is not None:
                    noted.facts.update(note.facts)
                    if note.chat:
                        self.chats.setdefault(_key(noted.route), {}).update(note.chat)
            elif op == "done":
                self.entries.pop(_Done.model_validate(data).id, None)
            elif op == "chat":
                chat = _Chat.model_validate(data)
                self.chats.setdefault((chat.channel, chat.chat_id), {}).update(chat.facts)
            else:
                self.skipped += 1
        except (ValueError, ValidationError):
            self.skipped += 1

    def _compact(self) -> None:
        """Rewrite the journal with only what is known about chats and the pending entries
        (atomic, durable)."""
        self._done_since_compaction = 0
        if self.path is None:
            return
        records = [
            _Chat(op="chat", channel=channel, chat_id=chat_id, facts=facts)
            for (channel, chat_id), facts in sorted(self.chats.items())
        ] + [_Put(op="put", entry=self.entries[i]) for i in sorted(self.entries)]
        write_atomic(self.path, b"".join((r.model_dump_json() + "\n").encode() for r in records))


def _key(route: ChannelRoute) -> ChatKey:
    return (route.channel, route.chat_id)
