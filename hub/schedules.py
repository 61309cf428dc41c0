"""Schedules: a prompt the hub runs on its own, by cron expression or once at a time.

`ScheduleSpec` is one `[[schedules]]` entry of config.toml (or one added with `agenthub ctl
schedules add`); `next_fire` says when it fires next. Cron expressions are evaluated by
`cronsim` in the schedule's time zone (so `0 9 * * *` is 09:00 local, across DST changes);
an expression that never fires, or fires more often than `MIN_INTERVAL`, is refused.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Annotated, Literal

from cronsim import CronSim, CronSimError
from pydantic import AfterValidator, StringConstraints, field_validator, model_validator

from hub.origin import ChannelRoute
from hub.usage import zone
from hub.wire import WireModel

MIN_INTERVAL = timedelta(seconds=60)
# How many upcoming fires are checked against MIN_INTERVAL.
_SAMPLED_FIRES = 64
_DELIVER = re.compile(r"^(last|none|telegram:-?\d{1,20})$")

Missed = Literal["run_once", "skip"]
ScheduleName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]


def _check_deliver(value: str) -> str:
    if not _DELIVER.match(value):
        raise ValueError(f"must be 'last', 'none' or 'telegram:<numeric chat id>', got {value!r}")
    return value


# Where the reply of a run the hub starts itself (schedule, heartbeat) goes: `last` (the
# owner's last chat, lastRoute), `none` (kept in the session only) or `telegram:<chatId>`.
DeliverTo = Annotated[str, AfterValidator(_check_deliver)]


def deliver_chat(deliver: str) -> tuple[str, str] | None:
    """(channel, chat id) for `<channel>:<chatId>`; None for `last` and `none`."""
    if deliver in ("last", "none"):
        return None
    channel, chat_id = deliver.split(":", 1)
    return channel, chat_id


def deliver_route(deliver: str, last_route: ChannelRoute | None) -> ChannelRoute | None:
    """The chat a reply goes to (as a new message: no reply-to), or None: the session only."""
    route: ChannelRoute | None = None
    chat = deliver_chat(deliver)
    if deliver == "last":
        route = last_route
    elif chat is not None:
        channel, chat_id = chat
        kind = "group" if chat_id.startswith("-") else "private"
        route = ChannelRoute(channel=channel, chat_id=chat_id, user_id=chat_id, chat_kind=kind)
    return None if route is None else route.model_copy(update={"reply_to_message_id": None})


class ScheduleError(ValueError):
    """A schedule that cannot run as written; the message says why and what to change."""


class ScheduleSpec(WireModel):
    """One schedule. Exactly one of `cron` and `at`. `agent` None: the default agent.
    `deliver`: `last` (the owner's last chat, lastRoute), `none` (kept in the session only),
    or `telegram:<chatId>`. `timezone` None: this machine's. `missed`: what a fire that was
    due while the hub was down (or asleep, or the clock jumped past it) does: `run_once` runs
    it once at start-up however many were missed, `skip` waits for the next one."""

    name: ScheduleName
    cron: str | None = None
    at: str | None = None
    prompt: Annotated[str, StringConstraints(min_length=1, max_length=20_000)]
    agent: str | None = None
    session: Annotated[str, StringConstraints(min_length=1, max_length=200)] = "main"
    deliver: DeliverTo = "last"
    timezone: str | None = None
    missed: Missed = "run_once"
    enabled: bool = True

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the prompt is empty")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            zone(value)
        return value

    @model_validator(mode="after")
    def _timing(self) -> ScheduleSpec:
        if (self.cron is None) == (self.at is None):
            raise ValueError("give exactly one of 'cron' (repeating) and 'at' (once)")
        if self.cron is not None:
            check_cron(self.cron, self.zone())
        else:
            self.at_time()
        return self

    def zone(self) -> tzinfo:
        if self.timezone is None:
            local = datetime.now().astimezone().tzinfo
            return local if local is not None else UTC
        return zone(self.timezone)

    def at_time(self) -> datetime:
        """`at` as an aware datetime (without an offset: in the schedule's time zone)."""
        assert self.at is not None
        try:
            moment = datetime.fromisoformat(self.at)
        except ValueError:
            raise ValueError(
                f"at: expected an ISO date-time like 2026-12-24T18:00, got {self.at!r}"
            ) from None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=self.zone())

    @property
    def chat(self) -> tuple[str, str] | None:
        """(channel, chat id) for `deliver = "<channel>:<chatId>"`."""
        return deliver_chat(self.deliver)


def check_cron(expression: str, where: tzinfo) -> None:
    """Refuse an expression cronsim cannot read, one that never fires, and one firing more
    often than MIN_INTERVAL (checked over its next fires)."""
    start = datetime.now(where)
    try:
        fires = CronSim(expression, start)
        previous = next(fires)
        for _ in range(_SAMPLED_FIRES):
            current = next(fires)
            if current - previous < MIN_INTERVAL:
                raise ScheduleError(
                    f"cron {expression!r} fires every {(current - previous).total_seconds():.0f}"
                    f"s; the minimum interval is {MIN_INTERVAL.total_seconds():.0f}s"
                )
            previous = current
    except CronSimError as exc:
        raise ScheduleError(f"cron {expression!r} is not valid: {exc}") from None
    except StopIteration:
        raise ScheduleError(f"cron {expression!r} never fires") from None


def next_fire(spec: ScheduleSpec, after: datetime) -> datetime | None:
    """The first time `spec` fires strictly after `after`, or None (a one-shot in the past).
    Datetimes are aware; the result is in UTC."""
    if spec.at is not None:
        moment = spec.at_time()
        return moment.astimezone(UTC) if moment > after else None
    assert spec.cron is not None
    try:
        return next(CronSim(spec.cron, after.astimezone(spec.zone()))).astimezone(UTC)
    except (CronSimError, StopIteration):
        return None
