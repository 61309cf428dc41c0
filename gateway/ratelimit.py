"""Token buckets: each device may send `rate` frames per second, in bursts of `burst`."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """Starts full; `take()` spends one token if there is one."""

    __slots__ = ("_clock", "_stamp", "_tokens", "burst", "rate")

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def take(self) -> bool:
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until `take()` can succeed again (0 when it can now)."""
        self._refill()
        return max(0.0, (1.0 - self._tokens) / self.rate)

    def full(self) -> bool:
        self._refill()
        return self._tokens >= self.burst
