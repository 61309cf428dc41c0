"""One health registry: every subsystem registers a probe that reads its real state.

`/healthz` and `/status` (gateway HTTP) and `agenthub ctl status` all report from here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from hub.wire import WireModel

log = logging.getLogger("agenthub.health")

HealthStatus = Literal["ok", "degraded", "down"]


class SubsystemHealth(WireModel):
    """One subsystem's state. `age_seconds` is the age of its last sign of life, if any."""

    name: str
    status: HealthStatus
    detail: str = ""
    age_seconds: float | None = None


class HealthReport(WireModel):
    status: HealthStatus
    draining: bool
    subsystems: list[SubsystemHealth]

    @property
    def healthy(self) -> bool:
        return self.status == "ok" and not self.draining


Probe = Callable[[], SubsystemHealth]


class HealthRegistry:
    """Probes by subsystem name; a probe that raises reports its subsystem as down."""

    def __init__(self) -> None:
        self._probes: dict[str, Probe] = {}
        self.draining = False

    def register(self, name: str, probe: Probe) -> None:
        self._probes[name] = probe

    def unregister(self, name: str) -> None:
        self._probes.pop(name, None)

    def report(self) -> HealthReport:
        subsystems = []
        for name, probe in sorted(self._probes.items()):
            try:
                subsystems.append(probe())
            except Exception as exc:
                log.warning("health probe %s failed: %s", name, exc)
                subsystems.append(SubsystemHealth(name=name, status="down", detail=str(exc)))
        states = {s.status for s in subsystems}
        status: HealthStatus = (
            "down" if "down" in states else ("degraded" if "degraded" in states else "ok")
        )
        if self.draining and status == "ok":
            status = "degraded"
        return HealthReport(status=status, draining=self.draining, subsystems=subsystems)
