"""Usage and cost: what every run spent, kept in `<data-dir>/usage.jsonl`, and its totals.

One line per finished run (`UsageRecord`): agent, session key, source (`user`, `schedule`,
`heartbeat`, `recovery`), model, status, input/output/cached tokens as the provider reported
them, and the cost from the price table (`[prices."<model spec>"]`, USD per million tokens;
`None` when the model has no price). The run's `run` entry in its session holds the same
token counts; this file adds what the session does not know (source, model, cost) and lets
totals be read without opening every session.

The file is append-only (0600), each line written whole and fsynced; reading skips a torn or
unparsable line with one warning per read, so a crash costs at most the line being written.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator

from hub.events import RunStatus, now_ms
from hub.origin import Source
from hub.wire import StateModel, WireModel

log = logging.getLogger("agenthub.usage")

PerMillion = Annotated[float, Field(ge=0)]


class Price(WireModel):
    """USD per million tokens. `cached` prices input tokens read from the provider's prompt
    cache (default: the `input` price)."""

    input: PerMillion = 0.0
    output: PerMillion = 0.0
    cached: PerMillion | None = None


class PriceTable:
    """Prices by model spec (`openai:gpt-4o-mini`); `"<provider>:*"` covers a provider's
    other models. `echo` and `local` cost nothing unless priced."""

    FREE = ("echo", "local")

    def __init__(self, prices: dict[str, Price] | None = None) -> None:
        self._prices = dict(prices or {})

    def price(self, model: str) -> Price | None:
        if model in self._prices:
            return self._prices[model]
        provider = model.split(":", 1)[0]
        if f"{provider}:*" in self._prices:
            return self._prices[f"{provider}:*"]
        return Price() if provider in self.FREE else None

    def cost(self, model: str, input_tokens: int, output_tokens: int, cached: int) -> float | None:
        """The cost of one run in USD, or None when `model` has no price."""
        price = self.price(model)
        if price is None:
            return None
        cached = min(max(cached, 0), input_tokens)
        cached_price = price.input if price.cached is None else price.cached
        total = (
            (input_tokens - cached) * price.input
            + cached * cached_price
            + output_tokens * price.output
        )
        return round(total / 1_000_000, 8)


class BudgetConfig(WireModel):
    """TOML `[budget]`: limits per day for schedule and heartbeat runs (None: no limit)."""

    daily_tokens: Annotated[int, Field(ge=0)] | None = None
    daily_cost: Annotated[float, Field(ge=0)] | None = None
    timezone: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            zone(value)
        return value

    def zone(self) -> tzinfo:
        if self.timezone is None:
            local = datetime.now().astimezone().tzinfo
            return local if local is not None else UTC
        return zone(self.timezone)


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; ValueError with the fix when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name like 'Europe/Berlin' or 'UTC'"
        ) from None


class UsageRecord(WireModel):
    ts: int = Field(default_factory=now_ms)
    agent_id: str
    session_key: str
    run_id: str
    source: Source = "user"
    model: str
    status: RunStatus
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost: float | None = None

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class Totals(StateModel):
    """Sums over some runs. `unpriced`: runs whose model has no price (their cost is not in
    `cost`)."""

    runs: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    unpriced: int = 0

    def add(self, record: UsageRecord) -> None:
        self.runs += 1
        self.input_tokens += record.input_tokens
        self.output_tokens += record.output_tokens
        self.cached_tokens += record.cached_tokens
        if record.cost is None:
            self.unpriced += 1
        else:
            self.cost = round(self.cost + record.cost, 8)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class SessionTotals(Totals):
    agent_id: str
    session_key: str


class UsageReport(WireModel):
    """Totals since `since` (ms since the epoch; 0 = everything on record)."""

    since: int
    total: Totals
    agents: dict[str, Totals]
    sessions: list[SessionTotals]
    sources: dict[str, Totals]


def summarise(records: Iterable[UsageRecord], since: int = 0) -> UsageReport:
    total = Totals()
    agents: dict[str, Totals] = {}
    sessions: dict[tuple[str, str], SessionTotals] = {}
    sources: dict[str, Totals] = {}
    for record in records:
        if record.ts < since:
            continue
        total.add(record)
        agents.setdefault(record.agent_id, Totals()).add(record)
        key = (record.agent_id, record.session_key)
        if key not in sessions:
            sessions[key] = SessionTotals(agent_id=record.agent_id, session_key=record.session_key)
        sessions[key].add(record)
        sources.setdefault(record.source, Totals()).add(record)
    return UsageReport(
        since=since,
        total=total,
        agents=agents,
        sessions=sorted(sessions.values(), key=lambda s: (s.agent_id, s.session_key)),
        sources=sources,
    )


class UsageFile:
    """The append-only `usage.jsonl`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: UsageRecord) -> None:
        """Write one record durably (blocking: call it off the event loop)."""
        line = record.model_dump_json().encode() + b"\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size and not _ends_with_newline(self.path):
                os.write(fd, b"\n")  # end a torn last line so this record stands alone
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self, since: int = 0) -> Iterator[UsageRecord]:
        """Every readable record with `ts >= since`; bad lines are skipped, warned once."""
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return
        skipped = 0
        with handle:
            for raw in handle:
                if not raw.strip():
                    continue
                try:
                    record = UsageRecord.model_validate_json(raw)
                except ValidationError:
                    skipped += 1
                    continue
                if record.ts >= since:
                    yield record
        if skipped:
            log.warning("%s: skipped %d unreadable line(s)", self.path, skipped)


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


_AGE = re.compile(r"(\d+)\s*([mhdw])")
_AGE_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(value: str, now: float | None = None) -> int:
    """An ISO date or date-time (without an offset: this machine's local time), or an age such
    as `7d`, `24h`, `30m`, `2w` counted back from `now`, as ms since the epoch. Raises ValueError
    naming the expected forms."""
    age = _AGE.fullmatch(value.strip().lower())
    if age is not None:
        start = (time.time() if now is None else now) - int(age[1]) * _AGE_SECONDS[age[2]]
        return int(start * 1000)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"expected an ISO date or date-time like 2026-11-28 or 2026-11-28T09:00+01:00, "
            f"or an age like 7d, 24h or 30m, got {value!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return int(moment.timestamp() * 1000)
