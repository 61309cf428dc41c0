"""Per-chat outbound queues: every send to one chat goes out in order, one at a time.

The agent's subscriber only appends here, so a slow chat app (rate limits, retries) never
holds up the agent or another chat. Each chat gets a worker task while it has work.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import Literal

from channels.base import ChannelPlugin
from hub.origin import ChannelRoute
from hub.tasks import TaskFunnel

log = logging.getLogger("agenthub.channels")

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
        self.items: deque[Outgoing] = deque()
        self.worker: asyncio.Task[None] | None = None
        self.idle = asyncio.Event()
        self.idle.set()


class Outbox:
    """Serialises sends per (channel, chat). `sent` / `failed` count outcomes."""

    def __init__(self) -> None:
        self._chats: dict[tuple[str, str], _ChatQueue] = {}
        self._workers = TaskFunnel("channels:outbox", log)
        self.sent = 0
        self.failed = 0

    def put(self, item: Outgoing) -> None:
        key = (item.route.channel, item.route.chat_id)
        chat = self._chats.get(key)
        if chat is None:
            chat = self._chats[key] = _ChatQueue()
        chat.items.append(item)
        chat.idle.clear()
        if chat.worker is None or chat.worker.done():
            chat.worker = self._workers.spawn(
                self._work(key, chat), name=f"outbox:{key[0]}:{key[1]}"
            )

    def pending(self, channel: str, chat_id: str) -> int:
        chat = self._chats.get((channel, chat_id))
        return len(chat.items) if chat else 0

    async def _work(self, key: tuple[str, str], chat: _ChatQueue) -> None:
        while chat.items:
            item = chat.items[0]
            try:
                if item.kind == "reply":
                    ok = await item.plugin.reply_text(item.route, item.text, plain=item.plain)
                else:
                    ok = await item.plugin.send_text(item.route, item.text, plain=item.plain)
            except Exception:
                # A plugin should not raise for delivery failures; if one does, the block is
                # lost but the queue behind it still goes out.
                log.exception("channel %s: send to chat %s raised", key[0], key[1])
                ok = False
            chat.items.popleft()
            if ok:
                self.sent += 1
            else:
                self.failed += 1
        chat.idle.set()
        if self._chats.get(key) is chat and not chat.items:
            del self._chats[key]

    async def drain(self) -> None:
        """Wait until every queue is empty, including sends queued while waiting."""
        while busy := [chat for chat in self._chats.values() if not chat.idle.is_set()]:
            await busy[0].idle.wait()

    async def close(self, grace: float) -> None:
        """Give queued sends `grace` seconds, then cancel what is left (logged)."""
        try:
            async with asyncio.timeout(grace):
                await self.drain()
        except TimeoutError:
            left = sum(len(c.items) for c in self._chats.values())
            log.warning("channels: %d queued messages not sent at shutdown", left)
        await self._workers.close()
        self._chats.clear()
