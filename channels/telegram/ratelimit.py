"""Outbound rate limiting, so a busy bot stays under Telegram's flood limits instead of
collecting 429s: about 30 messages a second overall, one a second per chat, 20 a minute per
group. Each `acquire` waits until all three windows have room, then records the send."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from channels.telegram.config import RateLimits


class RateLimiter:
    def __init__(self, limits: RateLimits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._global: deque[float] = deque()
        self._chat_last: dict[str, float] = {}
        self._groups: dict[str, deque[float]] = {}
        self.waited = 0.0

    def _wait_for(self, chat_id: str, group: bool, now: float) -> float:
        limits = self.limits
        while self._global and now - self._global[0] >= 1.0:
            self._global.popleft()
        wait = 0.0
        if len(self._global) >= int(limits.global_per_second):
            wait = self._global[0] + 1.0 - now
        last = self._chat_last.get(chat_id)
        if last is not None:
            wait = max(wait, last + limits.chat_interval - now)
        if group:
            window = self._groups.setdefault(chat_id, deque())
            while window and now - window[0] >= 60.0:
                window.popleft()
            if len(window) >= int(limits.group_per_minute):
                wait = max(wait, window[0] + 60.0 - now)
        return wait

    async def acquire(self, chat_id: str, *, group: bool = False) -> None:
        """Wait for a free slot for one message to `chat_id`, then take it."""
        while True:
            now = self._clock()
            wait = self._wait_for(chat_id, group, now)
            if wait <= 0:
                break
            self.waited += wait
            await asyncio.sleep(wait)
        self._global.append(now)
        self._chat_last[chat_id] = now
        if group:
            self._groups[chat_id].append(now)
        if len(self._chat_last) > 10_000:
            # Forget chats idle for a while so the table stays small.
            cutoff = now - max(self.limits.chat_interval, 1.0)
            self._chat_last = {c: t for c, t in self._chat_last.items() if t > cutoff}
