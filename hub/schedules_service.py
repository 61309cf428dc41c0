"""The `schedules` service: fires schedules (`hub.schedules`) as turns of their session.

Each fire is `Hub.submit(agent, prompt, Origin(source="schedule", …), session_key=session)`.
Where the reply goes is the run's origin: `deliver = "last"` carries lastRoute (the chat the
owner last wrote from in `main`), `telegram:<chatId>` that chat, and both are delivered by the
channel manager like any chat reply; with `none`, or no lastRoute, the reply stays in the
session (desktop and web clients show it).

Timing reads the wall clock at least every `TICK` seconds, so a clock jump or a suspended
machine is noticed within that. A fire more than `LATE` past due (the hub was down, asleep, or
the clock jumped forward) is a missed one: `run_once` fires it once, however many were missed;
`skip` records it skipped. A clock jumping backwards never repeats a fire: the next one is
always computed after the last. Schedule and heartbeat runs respect the daily budget. What
each fire did is kept by `hub.schedules_results`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hub.errors import CodedError
from hub.health import Probe, SubsystemHealth
from hub.hub import Hub
from hub.origin import ChannelRoute, Origin
from hub.run_watch import submit_watched
from hub.schedules import ScheduleError, ScheduleSpec, deliver_route, next_fire
from hub.schedules_results import ScheduleResults
from hub.schedules_store import LastRun, ScheduleStore
from hub.tasks import TaskFunnel
from hub.usage_meter import UsageMeter
from hub.wire import WireModel

log = logging.getLogger("agenthub.schedules")

TICK = 30.0
LATE = timedelta(minutes=2)

ChatKnown = Callable[[str, str], bool]


class ScheduleEntry(WireModel):
    """A schedule as `schedules.list` shows it. `nextRun`/`lastRun.due` are ms since the
    epoch; `defined` says where it lives (`config` or `ctl`)."""

    schedule: ScheduleSpec
    defined: str
    next_run: int | None
    last_run: LastRun | None


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def origin_for(spec: ScheduleSpec, last_route: ChannelRoute | None) -> Origin:
    """Where a fire of `spec` answers: its chat, lastRoute for `last`, else the session."""
    route = deliver_route(spec.deliver, last_route)
    if route is None:
        return Origin(surface="desktop", source="schedule")
    return Origin(surface="channel", route=route, source="schedule")


_SCHEDULERS: weakref.WeakKeyDictionary[Hub, Scheduler] = weakref.WeakKeyDictionary()


class Scheduler:
    """Service `schedules`: config schedules plus those added at run time (persisted)."""

    @classmethod
    def of(cls, hub: Hub) -> Scheduler:
        """The scheduler of `hub` (the composition root builds it with the hub); a hub built
        without one (a bare hub in a test) gets one that keeps the file but fires nothing."""
        scheduler = _SCHEDULERS.get(hub)
        if scheduler is None:
            scheduler = cls(hub, hub.data_dir / "schedules.jsonl", [])
        if not scheduler._loaded:
            scheduler.store.load()
            scheduler._loaded = True
        return scheduler

    def __init__(
        self,
        hub: Hub,
        path: Path,
        configured: list[ScheduleSpec],
        *,
        meter: UsageMeter | None = None,
        channels: frozenset[str] = frozenset(),
        chat_known: ChatKnown | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.hub = hub
        self.store = ScheduleStore(path)
        self.meter = meter
        self.channels = channels
        self.chat_known = chat_known or (lambda channel, chat: True)
        self.configured = {spec.name: spec for spec in configured}
        self._clock = clock or (lambda: datetime.now(UTC))
        self._next: dict[str, datetime | None] = {}
        self._tasks = TaskFunnel("schedules", log)
        self.results = ScheduleResults(self.store, lambda name: name in self.specs(), self._tasks)
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._loaded = False
        for spec in configured:
            self.validate(spec)
        _SCHEDULERS[hub] = self

    @property
    def name(self) -> str:
        return "schedules"

    def probes(self) -> dict[str, Probe]:
        return {"schedules": self._probe}

    # -- the set of schedules ---------------------------------------------------------------

    def specs(self) -> dict[str, ScheduleSpec]:
        return {**self.store.added, **self.configured}

    def validate(self, spec: ScheduleSpec) -> None:
        """Refuse a schedule naming an agent, channel or chat this hub does not have."""
        agent = spec.agent or self.hub.default_agent.agent_id
        if agent not in self.hub.agents:
            known = ", ".join(self.hub.agents)
            raise ScheduleError(f"schedule {spec.name!r}: no agent {agent!r} (agents: {known})")
        chat = spec.chat
        if chat is None:
            return
        if chat[0] not in self.channels:
            raise ScheduleError(
                f"schedule {spec.name!r} delivers to {spec.deliver} but {chat[0]} is not "
                "configured (set TELEGRAM_BOT_TOKEN)"
            )
        if not self.chat_known(*chat):
            raise ScheduleError(
                f"schedule {spec.name!r}: chat {chat[1]} is not a known {chat[0]} user "
                "(pair it first, or add it to the allowed users)"
            )

    async def start(self) -> None:
        await asyncio.to_thread(self.store.load)
        self._loaded = True
        for name, spec in list(self.store.added.items()):
            if name in self.configured:
                log.warning("schedule %r is defined in config; the added one is ignored", name)
                continue
            try:
                self.validate(spec)
            except ScheduleError as exc:
                log.warning("%s; it stays on record but does not run", exc)
                self._next[name] = None
                continue
        for name, last in list(self.store.last.items()):
            if last.status == "running":  # the hub stopped during it: crash recovery closed it
                self.results.record(name, last.model_copy(update={"status": "interrupted"}))
        now = self._clock()
        for name, spec in self.specs().items():
            if name not in self._next:
                self._next[name] = self._first(name, spec, now)
        self._loop = asyncio.get_running_loop().create_task(self._run(), name="schedules")

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
            self._loop = None
        await self.results.flush()
        await self._tasks.close()

    def _first(self, name: str, spec: ScheduleSpec, now: datetime) -> datetime | None:
        """When `spec` is due first: after its last fire, or after it was added (`ctl`), or
        from now (a config schedule that never ran)."""
        last = self.store.last.get(name)
        if last is not None:
            base = _at(last.due)
        elif name in self.store.added_at and name not in self.configured:
            base = _at(self.store.added_at[name])
        else:
            base = now
        return next_fire(spec, base)

    async def add(self, spec: ScheduleSpec) -> ScheduleEntry:
        if spec.name in self.specs():
            raise CodedError(f"a schedule named {spec.name!r} exists already", "schedule_exists")
        self._check(spec)
        now = self._clock()
        if spec.at is not None and spec.at_time() <= now:
            raise CodedError(
                f"schedule {spec.name!r}: {spec.at} is in the past", "invalid_schedule"
            )
        await asyncio.to_thread(self.store.add, spec)
        self._next[spec.name] = next_fire(spec, now)
        self._wake.set()
        return self.entry(spec.name)

    async def remove(self, name: str) -> None:
        if name in self.configured:
            raise CodedError(
                f"schedule {name!r} is defined in config.toml; remove it there", "forbidden"
            )
        if name not in self.store.added:
            raise CodedError(f"no schedule {name!r}", "unknown_schedule")
        await asyncio.to_thread(self.store.remove, name)
        self._next.pop(name, None)

    def _check(self, spec: ScheduleSpec) -> None:
        try:
            self.validate(spec)
        except ScheduleError as exc:
            raise CodedError(str(exc), "invalid_schedule") from None

    def entry(self, name: str) -> ScheduleEntry:
        spec = self.specs()[name]
        upcoming = self._next.get(name)
        return ScheduleEntry(
            schedule=spec,
            defined="config" if name in self.configured else "ctl",
            next_run=_ms(upcoming) if upcoming is not None and spec.enabled else None,
            last_run=self.store.last.get(name),
        )

    def entries(self) -> list[ScheduleEntry]:
        return [self.entry(name) for name in sorted(self.specs())]

    # -- firing -----------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            now = self._clock()
            self.tick(now)
            upcoming = [d for d in self._next.values() if d is not None]
            wait = min([TICK, *((d - now).total_seconds() for d in upcoming)])
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.05, wait)):
                    await self._wake.wait()  # a schedule was added

    def tick(self, now: datetime) -> list[str]:
        """Fire (or skip) every schedule due at `now`; returns the names handled."""
        handled = []
        for name, spec in self.specs().items():
            due = self._next.get(name)
            if due is None or due > now or not spec.enabled:
                continue
            handled.append(name)
            self._next[name] = next_fire(spec, max(now, due))
            if now - due > LATE and spec.missed == "skip":
                log.info("schedule %r: missed its %s fire; skipped", name, due.isoformat())
                self.results.record(name, LastRun(due=_ms(due), status="skipped", detail="missed"))
                continue
            self.fire(name, due=due)
        return handled

    def fire(self, name: str, *, due: datetime | None = None, manual: bool = False) -> str | None:
        """Start schedule `name` now; returns its run id (None when it did not start: the
        budget is spent or the agent refused, recorded as its last result)."""
        spec = self.specs()[name]
        moment = due or self._clock()
        if not manual and self.meter is not None and not self.meter.allow(f"schedule {name!r}"):
            skipped = LastRun(due=_ms(moment), status="skipped", detail="budget spent")
            self.results.record(name, skipped)
            return None
        agent = spec.agent or self.hub.default_agent.agent_id
        origin = origin_for(spec, self.hub.last_route.route)
        try:
            run = submit_watched(self.hub, agent, spec.prompt, origin, session_key=spec.session)
        except CodedError as exc:
            log.warning("schedule %r could not start: %s", name, exc.message)
            refused = LastRun(due=_ms(moment), status="refused", detail=exc.message)
            self.results.record(name, refused)
            return None
        self.results.follow(name, _ms(moment), run)
        return run.run_id

    def _probe(self) -> SubsystemHealth:
        specs = self.specs()
        upcoming = sorted((d, n) for n, d in self._next.items() if d is not None and n in specs)
        detail = f"{len(specs)} schedule(s)"
        if upcoming:
            when, name = upcoming[0]
            detail += f"; next {name!r} at {when.isoformat(timespec='minutes')}"
        failed = [n for n, last in self.store.last.items() if last.status in ("failed", "refused")]
        if failed:
            detail += f"; last run failed: {', '.join(sorted(failed))}"
        return SubsystemHealth(name="schedules", status="ok", detail=detail, age_seconds=None)
