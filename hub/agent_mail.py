"""Agents that message each other: a persisted inbox per agent and delivery as turns.

- A message is appended to the recipient's inbox (`<data-dir>/mail/<agent>.jsonl`, 0600,
  fsynced; a torn or unreadable line is skipped on load, with one warning) before anything
  else happens, so it is never lost.
- Delivered as a turn (the default), it runs in the recipient's session `agent:<sender>`,
  never `main`: every surface sees that run like any other, so the owner can watch agents
  talk. `send(..., wait=True)` returns the recipient's reply. With `inbox` delivery the
  message only waits in the inbox for `get_messages`.
- Loops are bounded: a message sent from a run that a message started carries one more hop,
  and past `max_hops` it is refused; each agent may send at most `per_minute` messages a
  minute.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import TypeAdapter, ValidationError

from hub.errors import CodedError
from hub.origin import Origin
from hub.run_watch import submit_watched
from hub.wire import WireModel

if TYPE_CHECKING:
    from hub.hub import Hub

log = logging.getLogger("agenthub.mail")

Priority = Literal["normal", "urgent"]
Delivery = Literal["turn", "inbox"]
SESSION_PREFIX = "agent:"
MAX_TRACKED_RUNS = 10_000
MAIL_DIR = "mail"


class MailError(CodedError):
    """A message that cannot be sent (unknown agent, a loop, too many)."""

    code = "mail_refused"


class MailMessage(WireModel):
    type: Literal["message"] = "message"
    id: str
    sender: str
    recipient: str
    text: str
    priority: Priority = "normal"
    hops: int = 0
    sent_at: float


class ReadMark(WireModel):
    type: Literal["read"] = "read"
    ids: list[str]


class AgentCard(WireModel):
    agent_id: str
    name: str
    status: Literal["busy", "idle"]
    model: str
    unread: int


_RECORD: TypeAdapter[MailMessage | ReadMark] = TypeAdapter(MailMessage | ReadMark)


class Inbox:
    """One agent's messages and which of them were read, kept in memory and on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: dict[str, MailMessage] = {}
        self.read: set[str] = set()
        self._load()

    def _load(self) -> None:
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return
        bad = 0
        for line in lines:
            try:
                record = _RECORD.validate_json(line)
            except ValidationError:
                bad += 1
                continue
            if isinstance(record, MailMessage):
                self.messages[record.id] = record
            else:
                self.read.update(record.ids)
        if bad:
            log.warning("%s: skipped %d unreadable line(s)", self.path, bad)

    def append(self, record: MailMessage | ReadMark) -> None:
        data = record.model_dump_json().encode() + b"\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            # A torn last line (a crash mid-write) must not swallow this record.
            if os.fstat(fd).st_size and not self._ends_with_newline():
                data = b"\n" + data
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if isinstance(record, MailMessage):
            self.messages[record.id] = record
        else:
            self.read.update(record.ids)

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as file:
            file.seek(-1, os.SEEK_END)
            return file.read(1) == b"\n"

    def unread(self) -> list[MailMessage]:
        return [m for m in self.messages.values() if m.id not in self.read]


def inbox_path(data_dir: Path, agent_id: str) -> Path:
    """Where `agent_id`'s inbox is kept (`Inbox(path)` reads it afresh)."""
    return data_dir / MAIL_DIR / f"{agent_id}.jsonl"


class AgentMail:
    """The message broker between one hub's agents. Built before the hub (the agents' tools
    hold it), then `attach`ed to it."""

    def __init__(
        self,
        data_dir: Path,
        *,
        delivery: Mapping[str, Delivery] | None = None,
        max_hops: int = 3,
        per_minute: int = 20,
        reply_timeout: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.data_dir = data_dir
        self.root = data_dir / MAIL_DIR
        self.delivery = dict(delivery or {})
        self.max_hops = max_hops
        self.per_minute = per_minute
        self.reply_timeout = reply_timeout
        self._clock = clock
        self._hub: Hub | None = None
        self._inboxes: dict[str, Inbox] = {}
        self._sent: dict[str, deque[float]] = {}
        # Runs that a message started, and its hop count: a message they send goes one further.
        self._hops: dict[str, int] = {}

    def attach(self, hub: Hub) -> None:
        self._hub = hub
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)

    @property
    def hub(self) -> Hub:
        if self._hub is None:
            raise MailError("agent messages are not available in this process", "unavailable")
        return self._hub

    def inbox(self, agent_id: str) -> Inbox:
        if agent_id not in self._inboxes:
            self._inboxes[agent_id] = Inbox(inbox_path(self.data_dir, agent_id))
        return self._inboxes[agent_id]

    def directory(self) -> list[AgentCard]:
        hub = self.hub
        return [
            AgentCard(
                agent_id=info.agent_id,
                name=info.name,
                status="busy" if info.busy else "idle",
                model=info.model,
                unread=len(self.inbox(info.agent_id).unread()),
            )
            for info in hub.agents_info()
        ]

    async def send(
        self,
        sender: str,
        recipient: str,
        text: str,
        *,
        priority: Priority = "normal",
        from_run: str | None = None,
        wait: bool = False,
    ) -> tuple[MailMessage, str | None]:
        """Send `text` from agent `sender`; returns the message and, with `wait` and turn
        delivery, the recipient's reply. Raises `MailError` saying why it was refused."""
        hub = self.hub
        if recipient not in hub.agents:
            known = ", ".join(a for a in hub.agents if a != sender) or "none"
            raise MailError(f"no agent {recipient!r} (other agents: {known})", "unknown_agent")
        if recipient == sender:
            raise MailError("an agent cannot message itself")
        message = self._new(sender, recipient, text, priority, from_run)
        self.inbox(recipient).append(message)
        log.info("mail %s: %s -> %s (hop %d)", message.id, sender, recipient, message.hops)
        if self.delivery.get(recipient, "turn") == "inbox":
            return message, None
        return message, await self._deliver(message, wait=wait)

    async def broadcast(
        self, sender: str, text: str, *, from_run: str | None = None
    ) -> list[MailMessage]:
        sent = []
        for recipient in self.hub.agents:
            if recipient != sender:
                message, _ = await self.send(sender, recipient, text, from_run=from_run)
                sent.append(message)
        return sent

    def messages(
        self, agent_id: str, *, unread_only: bool = True, limit: int = 20, mark_read: bool = True
    ) -> list[MailMessage]:
        """The newest `limit` messages to `agent_id`, oldest first (urgent ones first)."""
        inbox = self.inbox(agent_id)
        pool = inbox.unread() if unread_only else list(inbox.messages.values())
        chosen = sorted(pool, key=lambda m: m.sent_at)[-limit:]
        chosen.sort(key=lambda m: m.priority != "urgent")
        if mark_read and chosen:
            self.mark_read(agent_id, [m.id for m in chosen])
        return chosen

    def mark_read(self, agent_id: str, ids: list[str]) -> int:
        inbox = self.inbox(agent_id)
        fresh = [i for i in ids if i in inbox.messages and i not in inbox.read]
        if fresh:
            inbox.append(ReadMark(ids=fresh))
        return len(fresh)

    def _new(
        self, sender: str, recipient: str, text: str, priority: Priority, from_run: str | None
    ) -> MailMessage:
        hops = self._hops.get(from_run, -1) + 1 if from_run else 0
        if hops > self.max_hops:
            log.warning("mail loop stopped: %s -> %s after %d hops", sender, recipient, hops - 1)
            raise MailError(
                f"stopped: this conversation between agents is {hops - 1} messages deep "
                f"(the limit is {self.max_hops}); answer without messaging another agent",
                "mail_loop",
            )
        now = self._clock()
        recent = self._sent.setdefault(sender, deque())
        while recent and now - recent[0] > 60:
            recent.popleft()
        if len(recent) >= self.per_minute:
            raise MailError(
                f"agent {sender} sent {len(recent)} messages in the last minute (the limit is "
                f"{self.per_minute}); wait before sending more",
                "rate_limited",
            )
        recent.append(now)
        if not text.strip():
            raise MailError("the message is empty", "empty")
        return MailMessage(
            id=f"m-{secrets.token_hex(6)}",
            sender=sender,
            recipient=recipient,
            text=text,
            priority=priority,
            hops=hops,
            sent_at=now,
        )

    async def _deliver(self, message: MailMessage, *, wait: bool) -> str | None:
        hub = self.hub
        text = f"[message {message.id} from agent {message.sender}] {message.text}"
        # The hub itself writes this turn, in a session of its own (never main).
        origin = Origin(surface="desktop")
        key = f"{SESSION_PREFIX}{message.sender}"
        if wait:
            run = submit_watched(hub, message.recipient, text, origin, session_key=key)
            result = await run.result(self.reply_timeout)
            run_id = result.run_id
        else:
            run_id = hub.submit(message.recipient, text, origin, session_key=key)
        self._hops[run_id] = message.hops
        if len(self._hops) > MAX_TRACKED_RUNS:
            del self._hops[next(iter(self._hops))]
        self.inbox(message.recipient).append(ReadMark(ids=[message.id]))
        if not wait:
            return None
        if result.status is None:
            return f"(agent {message.recipient} did not answer within {self.reply_timeout:g} s)"
        reply = "\n\n".join(result.replies)
        return reply if result.status == "completed" else f"({result.status}) {reply}".strip()
