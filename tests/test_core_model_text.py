"""Text a model produces that no JSON line could carry (a lone surrogate from a broken stream)
never hangs a run: it is shown and saved with U+FFFD, and the run ends as every run does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path

from hub.events import AgentEnd, AgentEvent, MessageEnd
from hub.hub import Hub
from hub.model import ModelPart, ModelTurn, TextDelta
from hub.recorder import encodable
from hub.sessions import MessageEntry


class BrokenStream:
    name = "broken"

    async def stream(self, turn: ModelTurn) -> AsyncGenerator[ModelPart, None]:
        yield TextDelta(text="hello \ud800 world \U0001f600")


def test_encodable_keeps_valid_text_and_replaces_lone_surrogates() -> None:
    assert encodable("plain ✓ \U0001f600") == "plain ✓ \U0001f600"
    assert encodable("a\udc00b\ud83d") == "a\ufffdb\ufffd"


async def test_a_lone_surrogate_from_the_model_ends_the_run_normally(data_dir: Path) -> None:
    hub = Hub(data_dir, BrokenStream)
    seen: list[AgentEvent] = []
    hub.default_agent.subscribe(seen.append)
    try:
        hub.default_agent.write("hi")
        async with asyncio.timeout(10):
            await hub.default_agent.wait_idle()
    finally:
        await hub.close()
    assert isinstance(seen[-1], AgentEnd) and seen[-1].status == "completed"
    final = [e for e in seen if isinstance(e, MessageEnd) and e.role == "assistant"]
    assert [e.text for e in final] == ["hello \ufffd world \U0001f600"]
    reloaded = Hub(data_dir, BrokenStream)
    try:
        texts = [e.text for e in reloaded.default_agent.history() if isinstance(e, MessageEntry)]
        assert texts == ["hi", "hello \ufffd world \U0001f600"]
    finally:
        await reloaded.close()
