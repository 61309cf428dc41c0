"""Heartbeats: an optional periodic check-in prompt per agent.

Each `[[heartbeats]]` entry runs its prompt every `interval_minutes` as a turn of its session
(origin source `heartbeat`). The reply is looked at when the run ends: a reply that is only
the marker `HEARTBEAT_OK` (case and surrounding punctuation ignored; an empty reply too)
means there is nothing to report and is dropped; anything else is delivered like a schedule's
reply (`deliver`: `last`, `none`, `telegram:<chatId>`). A heartbeat does not run while its
session has a turn going, nor when nobody has written in that session for
`pause_after_idle_hours` (0: never pause), nor once the daily budget is spent.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import Field, StringConstraints

from hub.errors import CodedError
from hub.events import AgentEvent, AgentStart
from hub.health import Probe, SubsystemHealth
from hub.hub import Hub
from hub.origin import ChannelRoute, Origin
from hub.run_watch import WatchedRun, submit_watched
from hub.schedules import DeliverTo, deliver_route
from hub.tasks import TaskFunnel
from hub.usage_meter import UsageMeter
from hub.wire import WireModel

log = logging.getLogger("agenthub.heartbeats")

MARKER = "HEARTBEAT_OK"
DEFAULT_PROMPT = (
    "Heartbeat: check whether there is anything the user should hear about now (reminders, "
    f"follow-ups, something that changed). If there is nothing, reply exactly {MARKER}."
)
TICK = 30.0
_ONLY_MARKER = re.compile(rf"^[\s\W]*{MARKER}[\s\W]*$", re.IGNORECASE)

Deliver = Callable[[ChannelRoute, str], object]


class HeartbeatSpec(WireModel):
    """TOML `[[heartbeats]]`. `agent` None: the default agent."""

    agent: str | None = None
    interval_minutes: Annotated[float, Field(ge=1, le=7 * 24 * 60)] = 30
    prompt: Annotated[str, StringConstraints(min_length=1, max_length=20_000)] = DEFAULT_PROMPT
    session: Annotated[str, StringConstraints(min_length=1, max_length=200)] = "main"
    deliver: DeliverTo = "last"
    pause_after_idle_hours: Annotated[float, Field(ge=0)] = 24


def nothing_to_report(text: str) -> bool:
    return not text.strip() or bool(_ONLY_MARKER.match(text))


class Heartbeats:
    """Service `heartbeats`."""

    def __init__(
        self,
        hub: Hub,
        specs: list[HeartbeatSpec],
        *,
        meter: UsageMeter | None = None,
        deliver: Deliver | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.hub = hub
        self.specs = specs
        self.meter = meter
        self.deliver = deliver
        self._clock = clock or (lambda: datetime.now(UTC))
        self._next: list[datetime] = []
        self._last_user: dict[tuple[str, str], datetime] = {}
        self._tasks = TaskFunnel("heartbeats", log)
        self._loop: asyncio.Task[None] | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        self.dropped = 0
        self.delivered = 0
        for spec in specs:
            agent = self.agent_of(spec)
            if agent not in hub.agents:
                raise ValueError(f"heartbeat: no agent {agent!r} (agents: {', '.join(hub.agents)})")

    @property
    def name(self) -> str:
        return "heartbeats"

    def probes(self) -> dict[str, Probe]:
        return {"heartbeats": self._probe} if self.specs else {}

    def agent_of(self, spec: HeartbeatSpec) -> str:
        return spec.agent or self.hub.default_agent.agent_id

    async def start(self) -> None:
        now = self._clock()
        self._next = [now + timedelta(minutes=s.interval_minutes) for s in self.specs]
        for spec in self.specs:
            # Until a person writes, the session's last activity stands for it.
            meta = self.hub.agent(self.agent_of(spec)).sessions.meta(spec.session)
            if meta is not None:
                seen = datetime.fromtimestamp(meta.updated_at / 1000, UTC)
                self._last_user[(self.agent_of(spec), spec.session)] = seen
        for agent in self.hub.agents.values():
            self._unsubscribe.append(agent.subscribe(self._on_event, name="heartbeats"))
        if self.specs:
            self._loop = asyncio.get_running_loop().create_task(self._run(), name="heartbeats")

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
            self._loop = None
        await self._tasks.close()
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()

    def _on_event(self, event: AgentEvent) -> None:
        if isinstance(event, AgentStart) and event.origin.source == "user":
            moment = datetime.fromtimestamp(event.ts / 1000, UTC)
            self._last_user[(event.agent_id, event.session_key)] = moment

    async def _run(self) -> None:
        while True:
            now = self._clock()
            self.tick(now)
            wait = min([TICK, *((d - now).total_seconds() for d in self._next)])
            await asyncio.sleep(max(0.05, wait))

    def tick(self, now: datetime) -> list[int]:
        """Run every heartbeat due at `now`; returns the indexes of those started."""
        started = []
        for index, spec in enumerate(self.specs):
            if self._next[index] > now:
                continue
            self._next[index] = now + timedelta(minutes=spec.interval_minutes)
            if self.fire(spec, now):
                started.append(index)
        return started

    def paused(self, spec: HeartbeatSpec, now: datetime) -> bool:
        if not spec.pause_after_idle_hours:
            return False
        seen = self._last_user.get((self.agent_of(spec), spec.session))
        return seen is None or now - seen > timedelta(hours=spec.pause_after_idle_hours)

    def fire(self, spec: HeartbeatSpec, now: datetime) -> bool:
        agent_id = self.agent_of(spec)
        agent = self.hub.agent(agent_id)
        if agent.session_busy(spec.session):
            log.debug("heartbeat of %s: session %s is busy; next time", agent_id, spec.session)
            return False
        if self.paused(spec, now):
            log.debug("heartbeat of %s: session %s is idle; paused", agent_id, spec.session)
            return False
        if self.meter is not None and not self.meter.allow(f"heartbeat of {agent_id}"):
            return False
        origin = Origin(surface="desktop", source="heartbeat")
        try:
            run = submit_watched(self.hub, agent_id, spec.prompt, origin, session_key=spec.session)
        except CodedError as exc:
            log.warning("heartbeat of %s could not start: %s", agent_id, exc.message)
            return False
        self._tasks.spawn(self._finish(spec, run), name="heartbeat")
        return True

    async def _finish(self, spec: HeartbeatSpec, run: WatchedRun) -> None:
        outcome = await run.result()
        text = outcome.text
        if outcome.status != "completed" or nothing_to_report(text):
            self.dropped += 1
            return
        route = deliver_route(spec.deliver, self.hub.last_route.route)
        self.delivered += 1
        if route is not None and self.deliver is not None:
            self.deliver(route, text)

    def _probe(self) -> SubsystemHealth:
        now = self._clock()
        paused = sum(1 for spec in self.specs if self.paused(spec, now))
        detail = f"{len(self.specs)} heartbeat(s), {self.delivered} delivered, "
        detail += f"{self.dropped} with nothing to report"
        if paused:
            detail += f"; {paused} paused (session idle)"
        return SubsystemHealth(name="heartbeats", status="ok", detail=detail)
