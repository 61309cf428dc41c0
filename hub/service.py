"""The lifecycle every long-lived part (gateway, hub link, channels, control socket, window
bridge, MCP servers) follows, and the one place its health probes are registered."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from hub.health import HealthRegistry, Probe


class Service(Protocol):
    """Started and stopped by the composition root, in order; `stop` is safe to call twice.
    `probes()` names the health probes it answers for (none for most parts)."""

    @property
    def name(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def probes(self) -> Mapping[str, Probe]: ...


def attach_probes(health: HealthRegistry, service: Service) -> Callable[[], None]:
    """Register `service`'s probes; returns the function that unregisters them."""
    probes = dict(service.probes())
    for name, probe in probes.items():
        health.register(name, probe)

    def detach() -> None:
        for name in probes:
            health.unregister(name)

    return detach
