"""An outage, logged the way a person wants to read it: once when it starts, then again at a
falling rate while it lasts (after 1, 2, 4, 8… minutes of it, at most every 30 minutes), and
once when it ends, with its duration."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

FIRST_REMINDER = 60.0
MAX_REMINDER_GAP = 1800.0


class OutageLog:
    """`failed(reason)` after each failed attempt, `recovered()` after a success."""

    def __init__(
        self,
        log: logging.Logger,
        what: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        first_reminder: float = FIRST_REMINDER,
    ) -> None:
        self._log = log
        self._what = what
        self._clock = clock
        self._first_reminder = first_reminder
        self._since: float | None = None
        self._next_reminder = 0.0
        self._gap = first_reminder
        self._failures = 0

    @property
    def down(self) -> bool:
        return self._since is not None

    @property
    def failures(self) -> int:
        """Failed attempts in the current outage."""
        return self._failures

    def failed(self, reason: str) -> None:
        now = self._clock()
        self._failures += 1
        if self._since is None:
            self._since = now
            self._gap = self._first_reminder
            self._next_reminder = now + self._gap
            self._log.warning("%s unreachable: %s (retrying)", self._what, reason)
            return
        if now >= self._next_reminder:
            self._log.warning(
                "%s still unreachable after %s (%d attempts): %s",
                self._what,
                _duration(now - self._since),
                self._failures,
                reason,
            )
            self._gap = min(self._gap * 2, MAX_REMINDER_GAP)
            self._next_reminder = now + self._gap

    def recovered(self) -> None:
        if self._since is None:
            return
        self._log.info(
            "%s reachable again after %s (%d failed attempts)",
            self._what,
            _duration(self._clock() - self._since),
            self._failures,
        )
        self._since = None
        self._failures = 0


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
