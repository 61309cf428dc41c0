"""Knowing that long polling is alive, restarting it when it is not, and never wedging on an
update the library cannot read.

`TrackingRequest` is the HTTP client used for `getUpdates` only. It stamps every completed
(2xx) poll, which health reports and the watchdog watches. It also checks each update in a
poll's answer the way python-telegram-bot will parse it: one that does not parse (e.g. a
message without `date`) is replaced by its bare `update_id`, so the library still advances
the offset past it, and it is reported once to `on_unreadable` (the library would otherwise
fail the whole batch and fetch the same update again, forever).

`PollSupervisor` starts polling, sorts poll errors (a 409 Conflict is logged once and shown
in health) and restarts a poll that has not completed for `watchdog_stall` seconds: the
updater is stopped (its stop event cancels the hung request) and started again from the same
offset, so no update is skipped or repeated.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from telegram import Update
from telegram._utils.defaultvalue import DEFAULT_NONE
from telegram._utils.types import ODVInput
from telegram.error import Conflict, TelegramError
from telegram.ext import Application
from telegram.request import HTTPXRequest, RequestData

from channels.telegram.config import TelegramConfig
from hub.tasks import TaskFunnel

log = logging.getLogger("agenthub.telegram")

TelegramApp = Application[Any, Any, Any, Any, Any, Any]
UnreadableCallback = Callable[[int, str], None]


def readable_updates(payload: bytes, on_unreadable: UnreadableCallback) -> bytes:
    """`payload` (a getUpdates answer) with every update that does not parse reduced to its
    `update_id`; unchanged when all parse or when it is not a successful answer."""
    try:
        body = json.loads(payload)
    except ValueError:
        return payload
    result = body.get("result") if isinstance(body, dict) else None
    if not isinstance(result, list):
        return payload
    changed = False
    for index, item in enumerate(result):
        update_id = item.get("update_id") if isinstance(item, dict) else None
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            continue  # nothing to advance past; the library reports it
        try:
            Update.de_json(item, None)
        except Exception as exc:  # any parse failure means "unreadable"
            result[index] = {"update_id": update_id}
            changed = True
            on_unreadable(update_id, f"{type(exc).__name__}: {exc}")
    return json.dumps(body).encode() if changed else payload


class TrackingRequest(HTTPXRequest):
    """HTTPXRequest that remembers when the last successful response arrived and keeps
    unreadable updates from wedging the poll loop."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        write_timeout: float,
        on_unreadable: UnreadableCallback,
    ) -> None:
        super().__init__(
            connection_pool_size=4,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
        )
        self.last_completed: float | None = None
        self.completed = 0
        self._on_unreadable = on_unreadable

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
            payload = readable_updates(payload, self._on_unreadable)
        return code, payload

    def age(self) -> float | None:
        """Seconds since the last completed poll, or None before the first one."""
        if self.last_completed is None:
            return None
        return time.monotonic() - self.last_completed


class PollSupervisor:
    """Long polling for one Application: start, conflicts, watchdog restarts."""

    def __init__(self, config: TelegramConfig, request: TrackingRequest) -> None:
        self.config = config
        self.request = request
        self.restarts = 0
        self.conflicts = 0
        self.conflict_at: float | None = None
        self._app: TelegramApp | None = None
        self._tasks = TaskFunnel("telegram:polling", log)
        self._watching = False

    @property
    def name(self) -> str:
        return "telegram:polling"

    async def start(self, app: TelegramApp) -> None:
        """Begin polling (if not already) and watch it."""
        self._app = app
        if app.updater is not None and not app.updater.running:
            await self._start_polling()
        if not self._watching:
            self._watching = True
            self._tasks.spawn(self._watch(), name="telegram:watchdog")

    async def stop(self) -> None:
        self._watching = False
        await self._tasks.close()

    def in_conflict(self) -> bool:
        """A 409 came after the last completed poll."""
        return self.conflict_at is not None and (self.request.last_completed or 0) < (
            self.conflict_at
        )

    async def _start_polling(self) -> None:
        assert self._app is not None and self._app.updater is not None
        await self._app.updater.start_polling(
            timeout=int(self.config.poll_timeout),
            allowed_updates=["message", "callback_query"],
            error_callback=self._on_poll_error,
        )

    def _on_poll_error(self, exc: TelegramError) -> None:
        if isinstance(exc, Conflict):
            self.conflicts += 1
            if self.conflict_at is None:
                log.error(
                    "telegram: 409 Conflict: another process is polling with this bot token "
                    "(or a webhook is set). Stop the other instance; polling keeps retrying."
                )
            self.conflict_at = time.monotonic()
            return
        log.warning("telegram: polling failed: %s", exc)

    async def _watch(self) -> None:
        """Restart polling that has not completed a poll for `watchdog_stall` seconds."""
        started = time.monotonic()
        while self._watching:
            await asyncio.sleep(self.config.watchdog_interval)
            last = self.request.last_completed or started
            if time.monotonic() - last < self.config.watchdog_stall:
                continue
            log.error(
                "telegram: no poll completed for %.0fs; restarting polling",
                time.monotonic() - last,
            )
            await self._restart()
            started = time.monotonic()

    async def _restart(self) -> None:
        app = self._app
        if app is None or app.updater is None:
            return
        self.restarts += 1
        if app.updater.running:
            try:
                async with asyncio.timeout(self.config.poll_read_slack):
                    await app.updater.stop()
            except (TimeoutError, TelegramError) as exc:
                log.warning("telegram: stopping the stalled poll: %s", exc)
        try:
            await self._start_polling()
        except (TelegramError, RuntimeError) as exc:
            log.error("telegram: restarting polling failed (%s); the watchdog retries", exc)
