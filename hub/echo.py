"""The `echo` model: offline and deterministic, for trying the hub and for tests.

It streams the user's text back in several updates; the final text equals the input exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from hub.model import ModelPart, ModelTurn, TextDelta, UsageReport


class EchoModel:
    """Echoes each turn in `pieces` deltas, waiting `delay` seconds before each one."""

    def __init__(self, *, pieces: int = 4, delay: float = 0.0) -> None:
        self.pieces = max(1, pieces)
        self.delay = delay

    @property
    def name(self) -> str:
        return "echo"

    async def stream(self, turn: ModelTurn) -> AsyncGenerator[ModelPart, None]:
        text = turn.text
        size = max(1, -(-len(text) // self.pieces))
        for start in range(0, len(text), size):
            # Yielding to the loop between pieces keeps abort() prompt even with no delay.
            await asyncio.sleep(self.delay)
            yield TextDelta(text[start : start + size])
        yield UsageReport(input_tokens=len(text.split()), output_tokens=len(text.split()))
