"""The lifecycle every long-lived part (gateway, hub link, channel plugin, window) follows."""

from __future__ import annotations

from typing import Protocol


class Service(Protocol):
    """Started and stopped by the composition root, in order; `stop` is safe to call twice."""

    @property
    def name(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
