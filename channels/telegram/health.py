"""What `/healthz` says about the Telegram channel."""

from __future__ import annotations

import time

from channels.telegram.config import TelegramConfig
from channels.telegram.policy import CHANNEL
from channels.telegram.polling import PollSupervisor
from channels.telegram.receiver import UpdateReceiver
from hub.health import SubsystemHealth


def _age(at: float | None) -> float | None:
    return time.monotonic() - at if at is not None else None


def _updates(receiver: UpdateReceiver) -> str:
    """The age of the last processed update and the count of skipped ones, when known."""
    parts = []
    age = _age(receiver.last_processed_at)
    if age is not None:
        parts.append(f"last update {age:.1f}s ago")
    if receiver.skipped:
        parts.append(f"skipped updates: {receiver.skipped}")
    return "".join(f"; {part}" for part in parts)


def telegram_health(
    config: TelegramConfig,
    *,
    running: bool,
    live: bool,
    live_since: float,
    connect_error: str | None,
    polling: PollSupervisor | None,
    receiver: UpdateReceiver,
) -> SubsystemHealth:
    """`down` while not running, connecting or in a 409 conflict; `degraded` when polls have
    stopped completing; otherwise `ok` with the poll age (webhook: the last update's age)."""
    if not running:
        return SubsystemHealth(name=CHANNEL, status="down", detail="not running")
    if not live:
        detail = f"connecting: {connect_error or 'starting'}"
        return SubsystemHealth(name=CHANNEL, status="down", detail=detail)
    updates = _updates(receiver)
    if polling is None:
        age = _age(receiver.last_processed_at)
        detail = "webhook" + (f"; skipped updates: {receiver.skipped}" if receiver.skipped else "")
        return SubsystemHealth(name=CHANNEL, status="ok", detail=detail, age_seconds=age)
    age = polling.request.age()
    if polling.in_conflict():
        return SubsystemHealth(
            name=CHANNEL,
            status="down",
            detail="409 Conflict: another process is polling with this bot token",
            age_seconds=age,
        )
    # Before the first long poll returns, polling is as fresh as the moment it began.
    quiet_for = age if age is not None else time.monotonic() - live_since
    stale = quiet_for > config.poll_timeout + config.poll_read_slack
    detail = f"polling; last poll {'in progress' if age is None else f'{age:.1f}s ago'}"
    detail += updates
    if polling.restarts:
        detail += f"; watchdog restarts: {polling.restarts}"
    return SubsystemHealth(
        name=CHANNEL, status="degraded" if stale else "ok", detail=detail, age_seconds=age
    )
