"""The usage service: records every finished run (`hub.usage`) and keeps the daily budget of
the runs the hub starts on its own (schedules and heartbeats; never a person's turns).

`[budget]` sets `daily_tokens` and/or `daily_cost` (USD) per day in `timezone` (default: this
machine's). When today's schedule and heartbeat runs have spent either, `allow()` says no
until the day ends, and the first refusal of the day is announced once through `notify`
(lastRoute, or the log). A budget of 0 means they never run (said once at start-up).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from hub.events import AgentEnd, AgentEvent, AgentStart, ReadGap
from hub.health import Probe, SubsystemHealth
from hub.hub import Hub
from hub.origin import Source
from hub.usage import BudgetConfig, PriceTable, Totals, UsageFile, UsageRecord

log = logging.getLogger("agenthub.usage")

AUTOMATIC: frozenset[Source] = frozenset({"schedule", "heartbeat"})


Notify = Callable[[str], None]


class UsageMeter:
    """Service `usage`: one async subscriber per agent writing `usage.jsonl`."""

    def __init__(
        self,
        hub: Hub,
        path: Path,
        prices: PriceTable,
        budget: BudgetConfig | None = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.hub = hub
        self.file = UsageFile(path)
        self.prices = prices
        self.budget = budget or BudgetConfig()
        self.notify: Notify = lambda text: log.warning("%s", text)
        self._clock = clock or (lambda: datetime.now(UTC).timestamp())
        self._starts: dict[str, AgentStart] = {}  # runs under way, by id
        self._day: date | None = None
        self._today = Totals()
        self._announced: date | None = None
        self._unsubscribe: list[Callable[[], None]] = []

    @property
    def name(self) -> str:
        return "usage"

    def probes(self) -> dict[str, Probe]:
        return {"budget": self._probe}

    async def start(self) -> None:
        day = self._today_date()
        start = datetime.combine(day, datetime.min.time(), self.budget.zone())
        since = int(start.timestamp() * 1000)
        records = await asyncio.to_thread(lambda: list(self.file.read(since)))
        self._day, self._today = day, Totals()
        for record in records:
            if record.source in AUTOMATIC:
                self._today.add(record)
        if self.budget.daily_tokens == 0 or self.budget.daily_cost == 0:
            log.warning("the daily budget is 0: schedules and heartbeats will not run")
        for agent in self.hub.agents.values():
            self._unsubscribe.append(
                agent.subscribe(self._on_event, on_gap=self._on_gap, name="usage")
            )

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()

    # -- recording --------------------------------------------------------------------------

    async def _on_event(self, event: AgentEvent) -> None:
        if isinstance(event, AgentStart):
            self._starts[event.run_id] = event
        elif isinstance(event, AgentEnd):
            start = self._starts.pop(event.run_id, None)
            await self.record(
                event,
                start.origin.source if start else "user",
                start.model if start else None,
            )

    def _on_gap(self, gap: ReadGap) -> None:
        log.warning("usage missed %d events of agent %s", gap.dropped, gap.agent_id)

    async def record(self, end: AgentEnd, source: Source, model: str | None) -> UsageRecord:
        """Record `end`'s usage; `model` is the one that answered (the session's current model
        when the run's start was not seen)."""
        model = model or self.hub.agent(end.agent_id).models.for_session(end.session_key).name
        record = UsageRecord(
            ts=end.ts,
            agent_id=end.agent_id,
            session_key=end.session_key,
            run_id=end.run_id,
            source=source,
            model=model,
            status=end.status,
            input_tokens=end.input_tokens,
            output_tokens=end.output_tokens,
            cached_tokens=end.cached_tokens,
            cost=self.prices.cost(model, end.input_tokens, end.output_tokens, end.cached_tokens),
        )
        if source in AUTOMATIC:
            self._roll()
            self._today.add(record)
        try:
            await asyncio.to_thread(self.file.append, record)
        except OSError as exc:
            log.error("could not record the usage of run %s (%s)", end.run_id, exc)
        return record

    # -- the budget -------------------------------------------------------------------------

    def _today_date(self) -> date:
        return datetime.fromtimestamp(self._clock(), self.budget.zone()).date()

    def _roll(self) -> None:
        day = self._today_date()
        if day != self._day:
            self._day, self._today = day, Totals()

    def spent_today(self) -> Totals:
        """What today's schedule and heartbeat runs used."""
        self._roll()
        return self._today.model_copy()

    def exhausted(self) -> str | None:
        """Why automatic runs may not start now, or None when the budget allows them."""
        self._roll()
        budget, spent = self.budget, self._today
        if budget.daily_tokens is not None and spent.tokens >= budget.daily_tokens:
            return f"{spent.tokens} of {budget.daily_tokens} tokens"
        if budget.daily_cost is not None and spent.cost >= budget.daily_cost:
            return f"${spent.cost:.4f} of ${budget.daily_cost:.4f}"
        return None

    def allow(self, what: str) -> bool:
        """Whether an automatic run (`what`, for the log) may start; the first refusal of the
        day is announced through `notify`."""
        reason = self.exhausted()
        if reason is None:
            return True
        log.info("%s skipped: the daily budget is spent (%s)", what, reason)
        if self._announced != self._day:
            self._announced = self._day
            self.notify(
                f"Today's budget for scheduled runs and heartbeats is spent ({reason}); "
                "they pause until tomorrow. Raise [budget] in config.toml to resume sooner."
            )
        return False

    def _probe(self) -> SubsystemHealth:
        budget = self.budget
        if budget.daily_tokens is None and budget.daily_cost is None:
            return SubsystemHealth(name="budget", status="ok", detail="no daily budget set")
        spent = self.spent_today()
        reason = self.exhausted()
        detail = f"today {spent.tokens} tokens, ${spent.cost:.4f}"
        if reason is not None:
            detail += " (spent: schedules and heartbeats paused)"
        return SubsystemHealth(name="budget", status="ok", detail=detail)
