"""Outbound rate limiting, so a busy bot stays under Telegram's flood limits instead of
collecting 429s: about 30 messages a second overall, one a second per chat, 20 a minute per
group.

Telegram counts a message when it *arrives*, somewhere between our request's start and its
response. So a send holds its slot from start until `window` seconds after its response: any
set of arrivals inside one window then holds that many slots at once, and the count we keep
under the limit is exactly what the server sees, whatever the network latency. Likewise a
chat's next message starts only `chat_interval` after its previous one was answered.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from channels.telegram.config import RateLimits

_POLL = 0.02


@dataclass
class _Window:
    """Sends in flight plus the end times of sends within the last `span` seconds."""

    span: float
    limit: int
    in_flight: int = 0
    ended: deque[float] = field(default_factory=deque)

    def wait(self, now: float) -> float:
        while self.ended and self.ended[0] + self.span <= now:
            self.ended.popleft()
        if self.in_flight + len(self.ended) < self.limit:
            return 0.0
        if not self.ended:
            return _POLL  # every slot is held by a request still in flight
        return self.ended[0] + self.span - now


class RateLimiter:
    def __init__(
        self,
        limits: RateLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._sleep = sleep
        self._global = _Window(1.0, max(1, int(limits.global_per_second)))
        self._chat_free_at: dict[str, float] = {}
        self._groups: dict[str, _Window] = {}
        self.waited = 0.0

    def _group(self, chat_id: str) -> _Window:
        window = self._groups.get(chat_id)
        if window is None:
            window = self._groups[chat_id] = _Window(
                60.0, max(1, int(self.limits.group_per_minute))
            )
        return window

    def _wait_for(self, chat_id: str, group: bool, now: float) -> float:
        wait = max(self._global.wait(now), self._chat_free_at.get(chat_id, 0.0) - now)
        if group:
            wait = max(wait, self._group(chat_id).wait(now))
        return wait

    @asynccontextmanager
    async def slot(self, chat_id: str, *, group: bool = False) -> AsyncIterator[None]:
        """Hold a slot for one message to `chat_id` while it is sent (waits for one first)."""
        while (wait := self._wait_for(chat_id, group, self._clock())) > 0:
            self.waited += wait
            await self._sleep(wait)
        windows = [self._global, self._group(chat_id)] if group else [self._global]
        for window in windows:
            window.in_flight += 1
        # Nothing else goes to this chat until this send is answered (plus the interval).
        self._chat_free_at[chat_id] = float("inf")
        try:
            yield
        finally:
            end = self._clock()
            for window in windows:
                window.in_flight -= 1
                window.ended.append(end)
            self._chat_free_at[chat_id] = end + self.limits.chat_interval
            if len(self._chat_free_at) > 10_000:
                # Forget chats that are free again, so the table stays small.
                self._chat_free_at = {c: t for c, t in self._chat_free_at.items() if t > end}
