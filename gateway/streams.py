"""One agent's `read()` stream as `stream` payloads for web clients.

- Only what `hub.filters.forward("web", event)` allows is sent (never user message events).
- `seq` counts the frames of one stream (the run), from 0, the same for every device, so a
  device that missed frames (or joined mid-stream) sees a jump.
- `message_update` carries the full text, so updates of one message are coalesced: the first
  goes at once, later ones at most one per `window`; `message_end` supersedes a held update,
  and any other event first flushes held updates.
- A `ReadGap` (the hub itself fell behind) goes out as a `read_gap` event (stream `read_gap`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from pydantic import JsonValue

from gateway.protocol import StreamPayload
from hub.events import (
    MAIN_SESSION,
    AgentEnd,
    EventBase,
    MessageEnd,
    MessageUpdate,
    ReadGap,
    ReadItem,
)
from hub.filters import forward

log = logging.getLogger("agenthub.hub_link")

COALESCE_WINDOW = 0.04
READ_GAP_STREAM = "read_gap"
MAX_TRACKED_STREAMS = 10_000

Send = Callable[[StreamPayload], Awaitable[None]]


class Coalescer:
    """Per-message rate limit for `message_update`: at most one per window, latest wins."""

    def __init__(self, window: float, clock: Callable[[], float]) -> None:
        self.window = window
        self._clock = clock
        self._last_sent: dict[str, float] = {}
        self._pending: dict[str, MessageUpdate] = {}

    def offer(self, update: MessageUpdate) -> bool:
        """True: send it now. False: held back (it replaces any held update)."""
        now = self._clock()
        last = self._last_sent.get(update.message_id)
        if update.message_id not in self._pending and (last is None or now - last >= self.window):
            self._last_sent[update.message_id] = now
            return True
        self._pending[update.message_id] = update
        return False

    def wait_time(self) -> float | None:
        if not self._pending:
            return None
        now = self._clock()
        return max(0.0, min(self._last_sent.get(m, now) + self.window - now for m in self._pending))

    def due(self) -> list[MessageUpdate]:
        now = self._clock()
        ready = [m for m in self._pending if self._last_sent.get(m, now) + self.window <= now]
        for message_id in ready:
            self._last_sent[message_id] = now
        return [self._pending.pop(m) for m in ready]

    def flush(self) -> list[MessageUpdate]:
        now = self._clock()
        updates = list(self._pending.values())
        for update in updates:
            self._last_sent[update.message_id] = now
        self._pending.clear()
        return updates

    def drop(self, message_id: str) -> None:
        """The message ended: its held update is superseded, and it needs no more timing."""
        self._pending.pop(message_id, None)
        self._last_sent.pop(message_id, None)


class StreamForwarder:
    """Turns one agent's read items into numbered stream payloads and hands each to `send`
    (which never raises: a failed send is the sender's to count and drop)."""

    def __init__(
        self,
        agent_id: str,
        send: Send,
        *,
        window: float = COALESCE_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.agent_id = agent_id
        self.coalescer = Coalescer(window, clock)
        self._send = send
        self._seqs: dict[str, int] = {}

    async def run(self, items: AsyncIterator[ReadItem]) -> None:
        """Forward `items` until they end; held updates go out when their window passes."""
        waiting: asyncio.Future[ReadItem] | None = None
        try:
            while True:
                if waiting is None:
                    waiting = asyncio.ensure_future(anext(items))
                done, _ = await asyncio.wait({waiting}, timeout=self.coalescer.wait_time())
                for update in self.coalescer.due():
                    await self._forward(update)
                if not done:
                    continue
                try:
                    item = waiting.result()
                except StopAsyncIteration:
                    return
                finally:
                    waiting = None
                try:
                    await self.handle(item)
                except Exception:
                    log.exception("forwarding an event of %s failed; going on", self.agent_id)
        finally:
            if waiting is not None:
                waiting.cancel()
                await asyncio.gather(waiting, return_exceptions=True)

    async def handle(self, item: ReadItem) -> None:
        if isinstance(item, ReadGap):
            await self._flush()
            await self._event(READ_GAP_STREAM, item.model_dump(mode="json"))
            return
        if not isinstance(item, EventBase) or not forward("web", item):
            return
        if isinstance(item, MessageUpdate):
            if self.coalescer.offer(item):
                await self._forward(item)
            return
        if isinstance(item, MessageEnd):
            self.coalescer.drop(item.message_id)
        await self._flush()
        await self._forward(item)
        if isinstance(item, AgentEnd):
            self._seqs.pop(item.run_id, None)

    async def _flush(self) -> None:
        for update in self.coalescer.flush():
            await self._forward(update)

    async def _forward(self, event: EventBase) -> None:
        await self._event(event.run_id, event.model_dump(mode="json"), event.session_key)

    async def _event(
        self, stream_id: str, event: dict[str, JsonValue], session_key: str = MAIN_SESSION
    ) -> None:
        # One count per stream, the same for every device: a device that joins mid-stream
        # sees a first seq above 0 and knows it missed the beginning.
        seq = self._seqs.get(stream_id, 0)
        self._seqs[stream_id] = seq + 1
        if len(self._seqs) > MAX_TRACKED_STREAMS:
            # Streams whose run never ended (a lost agent_end): forget the oldest half.
            for key in list(self._seqs)[: MAX_TRACKED_STREAMS // 2]:
                del self._seqs[key]
        await self._send(
            StreamPayload(
                agent_id=self.agent_id,
                stream_id=stream_id,
                seq=seq,
                event=event,
                session_key=session_key,
            )
        )
