"""Bounded per-consumer event channels: how one agent feeds many surfaces safely.

Delivery, per kind of consumer:
- The single `read()` reader and every `async def` subscriber have their own `EventChannel`
  (and a subscriber its own delivery task). The agent only ever appends to channels, so a slow
  consumer delays only itself, never the run or another consumer.
- A plain (sync) subscriber is called inline, in event order, as each event is emitted. It
  cannot be "slow" without blocking the whole event loop anyway, so a queue and a task would
  buy nothing but latency. Its exceptions are caught and logged like an async one's.
- A sync-looking callback that returns an awaitable is moved to the queued path at once: its
  task awaits that result first, so its events stay in order.
Either way, a subscriber that raises keeps receiving the next events.

Overflow policy, when a consumer is `limit` items behind:
1. Coalesce: drop every queued `message_update` that a later update or `message_end` of the
   same message (queued, or the one arriving) supersedes. Those carry the full text so far,
   so nothing a reader shows is lost (the reader sees a jump in `seq` between updates, and
   no `ReadGap`).
2. If that frees nothing, drop the oldest item and remember it. Before its next item the
   consumer receives a `ReadGap` saying how many items and which seqs it missed, so it can
   refetch history. Nothing is dropped silently, and memory stays bounded.
Superseded updates are tracked as they are queued, so a full channel costs O(1) per item
when there is nothing to coalesce, and coalescing is a single pass that frees them all.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable

from hub.errors import ReaderBusyError
from hub.events import AgentEvent, MessageEnd, MessageUpdate, ReadGap, ReadItem

log = logging.getLogger("agenthub.agent")

Callback = Callable[[AgentEvent], Awaitable[None] | None]
GapCallback = Callable[[ReadGap], Awaitable[None] | None]


class EventChannel:
    """A bounded FIFO of read items for exactly one consumer."""

    def __init__(self, agent_id: str, limit: int) -> None:
        if limit < 2:
            raise ValueError(f"channel limit must be at least 2, got {limit}")
        self._agent_id = agent_id
        self._limit = limit
        self._items: deque[ReadItem] = deque()
        # The one consumer's pending `get`, woken by the next put (cheaper than asyncio.Event).
        self._waiter: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        # Queued updates by message id (the newest only), and the seqs of superseded ones.
        self._latest: dict[str, MessageUpdate] = {}
        self._stale: set[int] = set()
        self._gap_count = 0
        self._gap_first = 0
        self._gap_last = 0
        self.coalesced = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: ReadItem) -> None:
        if self._closed:
            return
        latest = None
        if isinstance(item, (MessageUpdate, MessageEnd)):
            previous = self._latest.pop(item.message_id, None)
            if previous is not None:
                self._stale.add(previous.seq)
            if isinstance(item, MessageUpdate):
                latest = item
        if len(self._items) >= self._limit and not self._coalesce():
            self._drop_oldest()
        self._items.append(item)
        if latest is not None:
            self._latest[latest.message_id] = latest
        self._wake()

    def close(self) -> None:
        """No more items; `get` returns None once the queued ones are taken."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def take_nowait(self) -> ReadItem | None:
        """The next item (a pending `ReadGap` first), or None when nothing is queued."""
        if self._gap_count:
            gap = ReadGap(
                agent_id=self._agent_id,
                dropped=self._gap_count,
                first_seq=self._gap_first,
                last_seq=self._gap_last,
            )
            self._gap_count = self._gap_first = self._gap_last = 0
            return gap
        if self._items:
            return self._take()
        return None

    async def get(self) -> ReadItem | None:
        """The next item, waiting for one; None once the channel is closed and empty."""
        while True:
            item = self.take_nowait()
            if item is not None or self._closed:
                return item
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            self._waiter = self._loop.create_future()
            await self._waiter

    def _take(self) -> ReadItem:
        item = self._items.popleft()
        if isinstance(item, MessageUpdate):
            if item.seq in self._stale:
                self._stale.discard(item.seq)
            elif self._latest.get(item.message_id) is item:
                del self._latest[item.message_id]
        return item

    def _coalesce(self) -> bool:
        if not self._stale:
            return False
        stale = self._stale
        self._items = deque(
            item
            for item in self._items
            if not (isinstance(item, MessageUpdate) and item.seq in stale)
        )
        self.coalesced += len(stale)
        self._stale = set()
        return True

    def _drop_oldest(self) -> None:
        item = self._take()
        self.dropped += 1
        seq = getattr(item, "seq", None)
        if isinstance(seq, int):
            if not self._gap_first:
                self._gap_first = seq
            self._gap_last = seq
        self._gap_count += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.warning(
                "agent %s: a consumer fell %d items behind; dropped %d so far",
                self._agent_id,
                self._limit,
                self.dropped,
            )


class Subscriber:
    """A `subscribe()` callback with its own channel and delivery task.

    The callback may be sync (called inline by `offer`) or async (fed through `channel` by
    its own task). An exception is logged and delivery goes on with the next event; a slow
    async callback only delays its own channel.
    """

    def __init__(
        self,
        agent_id: str,
        callback: Callback,
        on_gap: GapCallback | None,
        limit: int,
        name: str,
    ) -> None:
        self.name = name
        self.channel = EventChannel(agent_id, limit)
        self.errors = 0
        self._agent_id = agent_id
        self._callback = callback
        self._on_gap = on_gap
        self._active = True
        self._task: asyncio.Task[None] | None = None
        self._first: Awaitable[object] | None = None
        if _is_async(callback):
            self._start()

    @property
    def inline(self) -> bool:
        """Whether events are delivered by calling the callback directly in `offer`."""
        return self._task is None

    def offer(self, event: AgentEvent) -> None:
        """Deliver one event: now (sync callback) or through the channel (async one)."""
        if self._task is not None:
            self.channel.put(event)
            return
        if not self._active:
            return
        try:
            result = self._callback(event)
        except Exception:
            self._failed()
            return
        if result is not None and inspect.isawaitable(result):
            self._first = result
            self._start()

    def _start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._deliver(), name=f"subscriber:{self._agent_id}:{self.name}"
        )

    def _failed(self) -> None:
        self.errors += 1
        log.exception("subscriber %s failed on an event; it keeps receiving", self.name)

    async def _deliver(self) -> None:
        if self._first is not None:
            first, self._first = self._first, None
            try:
                await first
            except Exception:
                self._failed()
        channel = self.channel
        while True:
            # Take what is queued without a coroutine round trip; wait only when empty.
            item = channel.take_nowait()
            if item is None:
                item = await channel.get()
                if item is None:
                    return
            try:
                if isinstance(item, ReadGap):
                    if self._on_gap is None:
                        log.warning("subscriber %s missed %d events", self.name, item.dropped)
                        continue
                    result = self._on_gap(item)
                else:
                    result = self._callback(item)
                if result is not None and inspect.isawaitable(result):
                    await result
            except Exception:
                self._failed()

    async def stop(self, grace: float) -> None:
        """Deliver what is queued (within `grace` seconds), then end the delivery task."""
        self._active = False
        self.channel.close()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace)
        except TimeoutError:
            self._task.cancel()
            log.warning("subscriber %s did not drain within %.1fs", self.name, grace)

    def cancel(self) -> None:
        """Stop at once, dropping what is queued."""
        self._active = False
        self.channel.close()
        if self._task is not None:
            self._task.cancel()


class Broadcast:
    """One agent's consumers: the `read()` channel and the subscribers, fed by `emit`."""

    def __init__(self, agent_id: str, read_limit: int, subscriber_limit: int) -> None:
        self._agent_id = agent_id
        self._subscriber_limit = subscriber_limit
        self._read = EventChannel(agent_id, read_limit)
        self._reader_active = False
        self._subscribers: dict[int, Subscriber] = {}
        # What `emit` iterates: a snapshot, so a callback may (un)subscribe while it runs.
        self._fanout: tuple[Subscriber, ...] = ()
        self._next = 0

    def subscribe(
        self, callback: Callback, on_gap: GapCallback | None, name: str
    ) -> Callable[[], None]:
        key = self._next
        self._next += 1
        subscriber = Subscriber(
            self._agent_id, callback, on_gap, self._subscriber_limit, name or f"#{key}"
        )
        self._subscribers[key] = subscriber
        self._fanout = tuple(self._subscribers.values())

        def unsubscribe() -> None:
            removed = self._subscribers.pop(key, None)
            if removed is not None:
                removed.cancel()
                self._fanout = tuple(self._subscribers.values())

        return unsubscribe

    async def read(self) -> AsyncGenerator[ReadItem, None]:
        if self._reader_active:
            raise ReaderBusyError(f"agent {self._agent_id} already has a reader")
        self._reader_active = True
        try:
            while (item := await self._read.get()) is not None:
                yield item
        finally:
            self._reader_active = False

    def emit(self, event: AgentEvent) -> None:
        for subscriber in self._fanout:
            subscriber.offer(event)
        self._read.put(event)

    async def close(self, drain: float) -> None:
        """End `read()` once drained; give subscribers `drain` seconds to take their events."""
        self._read.close()
        await asyncio.gather(*(s.stop(drain) for s in self._subscribers.values()))
        self._subscribers.clear()
        self._fanout = ()


def _is_async(callback: Callable[..., object]) -> bool:
    """An `async def` function, method or partial, or an object with an `async def __call__`."""
    return inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(
        getattr(callback, "__call__", None)  # noqa: B004 - looking for async __call__
    )
