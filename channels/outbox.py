"""Per-chat outbound queues: every send to one chat goes out in order, one at a time, and
survives a crash.

The agent's subscriber only appends here, so a slow chat app (rate limits, retries) never
holds up the agent or another chat. Each chat gets a worker task while it has work. Every
item is recorded in the `OutboxStore` journal when it is queued, before it is attempted, and
marked done once the plugin confirmed it (or ended it for good). On start, `resume` queues
what the last run left pending ahead of anything new, in the order it was recorded (except
that a send left in flight goes first in its chat); the plugin resumes each from the facts it
noted (so nothing that already landed is sent again).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from channels.base import ChannelPlugin
from channels.outbox_store import Facts, OutboxStore, Ticket
from hub.health import SubsystemHealth
from hub.origin import ChannelRoute
from hub.tasks import TaskFunnel

log = logging.getLogger("agenthub.channels")

# A chat whose oldest undelivered entry is older than this makes its channel `degraded`.
STALE_BACKLOG = 60.0
MAX_CHATS_SHOWN = 5

SendKind = Literal["reply", "send"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One text to deliver: as a reply to the user's message, or as a follow-up."""

    plugin: ChannelPlugin
    route: ChannelRoute
    text: str
    kind: SendKind = "send"
    plain: bool = False


class _ChatQueue:
    def __init__(self) -> None:
        self.items: deque[tuple[ChannelPlugin, Ticket]] = deque()
        self.worker: asyncio.Task[None] | None = None
        self.idle = asyncio.Event()
        self.idle.set()


class Outbox:
    """Serialises sends per (channel, chat). `sent` / `failed` count outcomes."""

    def __init__(self, store: OutboxStore | None = None) -> None:
        self.store = store or OutboxStore(None)
        self._chats: dict[tuple[str, str], _ChatQueue] = {}
        self._workers = TaskFunnel("channels:outbox", log)
        # Closed from `resume` until `open`: resumed entries wait for their plugins to start.
        self._gate = asyncio.Event()
        self._gate.set()
        self.sent = 0
        self.failed = 0

    def put(self, item: Outgoing) -> None:
        ticket = self.store.put(item.route, item.kind, item.text, plain=item.plain)
        self._queue(item.plugin, ticket)

    def record_live(self, route: ChannelRoute, facts: Facts) -> Ticket:
        """A live reply's message, recorded; its `LiveReply` delivers it (or, after a
        restart, `resume` does)."""
        return self.store.put(route, "live", facts=facts)

    def resume(self, plugins: Mapping[str, ChannelPlugin]) -> set[tuple[str, str]]:
        """Queue the entries a previous run left pending, oldest first; the chats they are
        for. Entries of a channel that is not configured now stay recorded. Nothing is sent
        before `open`."""
        self._gate.clear()
        chats: set[tuple[str, str]] = set()
        absent: set[str] = set()
        # A send left in flight goes first in its chat (see `channels.outbox_store`).
        for ticket in sorted(self.store.tickets(), key=lambda t: not t.in_flight):
            route = ticket.entry.route
            plugin = plugins.get(route.channel)
            if plugin is None:
                if route.channel not in absent:
                    log.warning("outbox: entries for channel %s wait until it is configured",
                                route.channel)  # fmt: skip
                absent.add(route.channel)
                continue
            self._queue(plugin, ticket)
            chats.add((route.channel, route.chat_id))
        if chats:
            log.info("outbox: resuming %d chat(s) with undelivered messages", len(chats))
        return chats

    def with_backlog(self, health: SubsystemHealth) -> SubsystemHealth:
        """A channel's health with its chats' backlog: entries not yet delivered per chat and
        the age of the oldest; `degraded` once one has waited `STALE_BACKLOG` seconds."""
        chats = self.store.backlog(health.name)
        if not chats:
            return health
        now = time.time()
        oldest = now - min(at for _, at in chats.values())
        parts = [
            f"chat {chat}: {count} waiting ({now - at:.0f}s)"
            for chat, (count, at) in sorted(chats.items(), key=lambda item: item[1][1])
        ]
        detail = f"{health.detail}; backlog: " if health.detail else "backlog: "
        shown = ", ".join(parts[:MAX_CHATS_SHOWN])
        if len(parts) > MAX_CHATS_SHOWN:
            shown += f" and {len(parts) - MAX_CHATS_SHOWN} more chats"
        status = health.status
        if status == "ok" and oldest > STALE_BACKLOG:
            status = "degraded"
        return health.model_copy(update={"detail": detail + shown, "status": status})

    def open(self) -> None:
        """The plugins have started: send."""
        self._gate.set()

    def _queue(self, plugin: ChannelPlugin, ticket: Ticket) -> None:
        key = (ticket.entry.route.channel, ticket.entry.route.chat_id)
        chat = self._chats.get(key)
        if chat is None:
            chat = self._chats[key] = _ChatQueue()
        chat.items.append((plugin, ticket))
        chat.idle.clear()
        if chat.worker is None or chat.worker.done():
            chat.worker = self._workers.spawn(
                self._work(key, chat), name=f"outbox:{key[0]}:{key[1]}"
            )

    def pending(self, channel: str, chat_id: str) -> int:
        chat = self._chats.get((channel, chat_id))
        return len(chat.items) if chat else 0

    async def _work(self, key: tuple[str, str], chat: _ChatQueue) -> None:
        await self._gate.wait()
        while chat.items:
            plugin, ticket = chat.items[0]
            try:
                outcome = await _deliver(plugin, ticket)
            except Exception:
                # A plugin should not raise for delivery failures; if one does, the entry
                # ends (logged) and the queue behind it still goes out.
                log.exception("channel %s: send to chat %s raised", key[0], key[1])
                outcome = "ended: the plugin raised"
            chat.items.popleft()
            ticket.done(outcome)
            if outcome == "sent":
                self.sent += 1
            else:
                self.failed += 1
        chat.idle.set()
        if self._chats.get(key) is chat and not chat.items:
            del self._chats[key]

    async def wait_idle(self, channel: str, chat_id: str) -> None:
        """Until the chat's queue is empty (a new live reply there waits for this)."""
        chat = self._chats.get((channel, chat_id))
        if chat is not None:
            await chat.idle.wait()

    async def drain(self) -> None:
        """Wait until every queue is empty, including sends queued while waiting."""
        while busy := [chat for chat in self._chats.values() if not chat.idle.is_set()]:
            await busy[0].idle.wait()

    async def close(self, grace: float) -> None:
        """Give queued sends `grace` seconds, then stop; what is left stays recorded and is
        sent on the next start."""
        try:
            async with asyncio.timeout(grace):
                await self.drain()
        except TimeoutError:
            left = sum(len(c.items) for c in self._chats.values())
            log.warning("channels: %d queued messages left for the next start", left)
        await self._workers.close()
        self._chats.clear()


async def _deliver(plugin: ChannelPlugin, ticket: Ticket) -> str:
    entry = ticket.entry
    if entry.kind == "live":
        return await _resume_live(plugin, ticket)
    send = plugin.reply_text if entry.kind == "reply" else plugin.send_text
    sent = await send(entry.route, entry.text, plain=entry.plain, ticket=ticket)
    return "sent" if sent else "ended"


async def _resume_live(plugin: ChannelPlugin, ticket: Ticket) -> str:
    """Finish one message of a live reply after a restart: post its final text unless it
    was posted (the plugin probes an attempt whose outcome is unknown), then make it show
    that text (an edit derived from the whole text: repeating it is harmless)."""
    route, facts = ticket.entry.route, ticket.facts
    final = facts.get("final")
    if not isinstance(final, str):
        log.info("channel %s: a reply cut short by a restart stays as it was", route.channel)
        return "interrupted: the reply never finished"
    plain = facts.get("plain") is True
    live = plugin.live
    if live is None:  # streaming turned off since: the final text as a block
        sent = await plugin.send_text(route, final, plain=plain, ticket=ticket)
        return "sent" if sent else "ended"
    text = final if plain else live.render(final)
    if text is None:
        return "ended: nothing to show"
    message_id = facts.get("message")
    if not isinstance(message_id, str):
        message_id = await live.post(
            route, text, reply=facts.get("reply") is True, plain=plain, ticket=ticket
        )
        if message_id is None:
            return "ended"
        ticket.note(message=message_id)
    if plain:
        return "sent"
    return "sent" if await live.edit(route, message_id, text, ticket=ticket) else "ended"
