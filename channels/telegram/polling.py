"""Knowing that long polling is alive, and restarting it when it is not.

`TrackingRequest` is the HTTP client used for `getUpdates` only: it stamps every completed
(2xx) poll, which is what health reports and what the watchdog watches. A poll that has not
completed for `watchdog_stall` seconds (longer than any healthy long poll) is restarted:
the updater is stopped (its stop event cancels the hung request) and started again from
the same offset, so no update is skipped.
"""

from __future__ import annotations

import time

from telegram._utils.defaultvalue import DEFAULT_NONE
from telegram._utils.types import ODVInput
from telegram.request import HTTPXRequest, RequestData


class TrackingRequest(HTTPXRequest):
    """HTTPXRequest that remembers when the last successful response arrived."""

    def __init__(
        self, *, connect_timeout: float, read_timeout: float, write_timeout: float
    ) -> None:
        super().__init__(
            connection_pool_size=4,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
        )
        self.last_completed: float | None = None
        self.completed = 0

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = DEFAULT_NONE,
        write_timeout: ODVInput[float] = DEFAULT_NONE,
        connect_timeout: ODVInput[float] = DEFAULT_NONE,
        pool_timeout: ODVInput[float] = DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        code, payload = await super().do_request(
            url,
            method,
            request_data,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            connect_timeout=connect_timeout,
            pool_timeout=pool_timeout,
        )
        if 200 <= code < 300:
            self.last_completed = time.monotonic()
            self.completed += 1
        return code, payload

    def age(self) -> float | None:
        """Seconds since the last completed poll, or None before the first one."""
        if self.last_completed is None:
            return None
        return time.monotonic() - self.last_completed
