"""The `echo` model: offline and deterministic, for trying the hub and for tests.

It streams the user's text back in several updates; the final text equals the input exactly.
Messages steered into a running turn (write mode `steer`) are echoed after it, each as its
own assistant message.
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
        words = 0
        pending = [turn.text]
        while pending:
            text = pending.pop(0)
            words += len(text.split())
            size = max(1, -(-len(text) // self.pieces))
            for start in range(0, len(text), size):
                # Yielding to the loop between pieces keeps abort() prompt even with no delay.
                await asyncio.sleep(self.delay)
                yield TextDelta(text[start : start + size])
            # Each piece is a step: messages steered in meanwhile are echoed next, in order.
            pending.extend(turn.steering())
        yield UsageReport(input_tokens=words, output_tokens=words)
