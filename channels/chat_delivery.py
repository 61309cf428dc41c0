"""What the channels send to chats, in order per chat: the durable `Outbox` (blocks, command
answers, reports), each run's reply (shown live, or in blocks) behind the chat's previous live
reply, and on start what the last process left undelivered, ahead of anything new."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from channels.base import ChannelPlugin
from channels.live_reply import LiveReply
from channels.outbox import Outbox, Outgoing
from channels.outbox_store import ChatKey, OutboxStore
from channels.replies import BlockReply, Reply
from hub.aggregator import MessageAggregator
from hub.health import Probe
from hub.origin import ChannelRoute
from hub.tasks import TaskFunnel

log = logging.getLogger("agenthub.channels")


class ChatDelivery:
    """The outbound side of the `ChannelManager`: `resume` then `open` on start, a `reply`
    for each run a channel started, `close` on stop."""

    def __init__(self, store: OutboxStore) -> None:
        self.outbox = Outbox(store)
        self._live = TaskFunnel("channels:live", log)
        # The last live reply's worker per chat: the next reply there waits for it.
        self._last_live: dict[ChatKey, asyncio.Task[None]] = {}

    def probe(self, plugin: ChannelPlugin) -> Probe:
        """The plugin's health with its chats' backlog."""
        return lambda: self.outbox.with_backlog(plugin.probe())

    def resume(self, plugins: Mapping[str, ChannelPlugin]) -> None:
        """Queue what the last process left undelivered; a new live reply in such a chat
        waits for it. Nothing is sent before `open`."""
        for key in self.outbox.resume(plugins):
            self._last_live[key] = self._live.spawn(self.outbox.wait_idle(*key), name="resume")

    def open(self) -> None:
        """The plugins have started: send."""
        self.outbox.open()

    def reply(
        self, plugin: ChannelPlugin, route: ChannelRoute
    ) -> tuple[Reply, asyncio.Task[None] | None]:
        """A run's reply in `route`'s chat and its worker: shown live when the plugin can,
        after the chat's previous live reply; else finished blocks through the outbox (no
        worker)."""
        live = plugin.live
        if live is None:
            return BlockReply(plugin, route, self.outbox), None
        key = (route.channel, route.chat_id)
        reply = LiveReply(
            live,
            route,
            plugin.limits,
            plugin.measure,
            outbox=self.outbox,
            after=self._last_live.get(key),
        )
        worker = self._live.spawn(reply.run(), name=f"live:{key[0]}:{key[1]}")
        self._last_live[key] = worker
        return reply, worker

    def deliver(self, plugin: ChannelPlugin, route: ChannelRoute, text: str) -> None:
        """Markdown `text` as new messages, chunked like a reply."""
        aggregator = MessageAggregator(
            lambda block: self.outbox.put(Outgoing(plugin, route, block.text, "send")),
            min_chars=plugin.limits.min_chars,
            max_chars=plugin.limits.max_chars,
            measure=plugin.measure,
        )
        aggregator.push(text)
        aggregator.finish()

    def answer(self, plugin: ChannelPlugin, route: ChannelRoute, text: str) -> None:
        """Plain `text` as a reply to the user's message (a command's answer, a notice)."""
        self.outbox.put(Outgoing(plugin, route, text, "reply", plain=True))

    async def drain(self) -> None:
        """Wait until every reply is shown and every queued send went out."""
        while True:
            workers = [t for t in self._last_live.values() if not t.done()]
            if workers:
                await asyncio.wait(workers)
                continue
            await self.outbox.drain()
            if not any(not t.done() for t in self._last_live.values()):
                return

    async def close(self, grace: float) -> None:
        """Give replies and queued sends `grace` seconds, then stop; what is left stays
        recorded and is sent on the next start."""
        try:
            async with asyncio.timeout(grace):
                await self.drain()
        except TimeoutError:
            log.warning("channels: replies still being sent at shutdown were cut short")
        await self._live.close()
        await self.outbox.close(0)
        self._last_live.clear()
