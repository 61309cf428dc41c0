"""Test rig for the channel tests: small scripted models and an in-process hub wired to the
real TelegramPlugin (python-telegram-bot) against the local fake Bot API server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from channels.manager import ChannelManager
from channels.telegram import RateLimits, TelegramConfig, TelegramPlugin
from channels.telegram.formatting import measure, render_html
from hub.agent import AsyncAgent
from hub.aggregator import MessageAggregator
from hub.approvals import Approvals
from hub.errors import ModelError
from hub.health import SubsystemHealth
from hub.hub import AgentSetup, Hub
from hub.model import Model, ModelPart, ModelTurn, TextDelta, ToolCallFinished, ToolCallStarted
from hub.scopes import ConversationConfig
from hub.service import attach_probes
from tests.fake_bot_api import FakeBotApi


def pieces_of(text: str, pieces: int) -> list[str]:
    size = max(1, -(-len(text) // pieces))
    return [text[i : i + size] for i in range(0, len(text), size)]


class ScriptedModel:
    """Answers every turn with `reply` (or echoes the turn when None), in `pieces` deltas.
    With `hold`, it sends its first piece and then waits for the event (abort tests); with
    `hold_first`, it waits for the event before it sends anything."""

    def __init__(
        self,
        reply: str | None = None,
        *,
        pieces: int = 8,
        delay: float = 0.0,
        fail: ModelError | None = None,
        hold: asyncio.Event | None = None,
        hold_first: asyncio.Event | None = None,
        tool_between: bool = False,
        tool_delay: float = 0.0,
    ) -> None:
        self.reply = reply
        self.pieces = pieces
        self.delay = delay
        self.fail = fail
        self.hold = hold
        self.hold_first = hold_first
        self.tool_between = tool_between
        self.tool_delay = tool_delay
        # When the first piece of the latest turn was yielded (time.monotonic()).
        self.first_piece_at: float | None = None

    @property
    def name(self) -> str:
        return "scripted"

    async def stream(self, turn: ModelTurn) -> AsyncGenerator[ModelPart, None]:
        text = self.reply if self.reply is not None else turn.text
        if self.hold_first is not None:
            await self.hold_first.wait()
        for index, piece in enumerate(pieces_of(text, self.pieces)):
            await asyncio.sleep(self.delay)
            if index == 0:
                self.first_piece_at = time.monotonic()
            yield TextDelta(piece)
            if index == 0 and self.hold is not None:
                await self.hold.wait()
        if self.tool_between:
            yield ToolCallStarted("t1", "search", {"q": "secret tool args"})
            await asyncio.sleep(self.tool_delay)
            yield ToolCallFinished("t1", "search", {"q": "x"}, "TOOL RESULT TEXT", False)
            yield TextDelta("After the tool.")
        if self.fail is not None:
            raise self.fail


def expected_blocks(text: str, pieces: int) -> list[str]:
    """The HTML blocks the channel should send for `text` streamed in `pieces` deltas."""
    blocks: list[str] = []
    aggregator = MessageAggregator(
        lambda block: blocks.append(render_html(block.text)),
        min_chars=3800,
        max_chars=4000,
        measure=measure,
    )
    for piece in pieces_of(text, pieces):
        aggregator.push(piece)
    aggregator.finish()
    return blocks


def long_markdown(sections: int = 6, tag: str = "") -> str:
    """A long reply with prose, code fences full of HTML-escaped characters, and tables."""
    parts = []
    for i in range(sections):
        parts.append(f"## Section {tag}{i}")
        parts.append(
            " ".join(
                f"Sentence {i}.{j} has <angle> brackets & ampersands, **bold** and `x<{j}>`."
                for j in range(10)
            )
        )
        code = "\n".join(f"if a{i}_{j} < b and c > d: print('&amp; {i}.{j}')" for j in range(45))
        parts.append(f"```python\n{code}\n```")
        rows = "\n".join(f"| row {i}.{j} | {j * j} | <x> & y |" for j in range(25))
        parts.append(f"| name | value | note |\n|---|---|---|\n{rows}")
    return "\n\n".join(parts)


def fast_config(api: FakeBotApi, **changes: Any) -> TelegramConfig:
    values: dict[str, Any] = {
        "bot_token": api.token,
        "api_base_url": api.base_url,
        "api_base_file_url": api.base_file_url,
        "dm_policy": "open",
        "poll_timeout": 1,
        "poll_read_slack": 2.0,
        "connect_timeout": 1.0,
        "read_timeout": 1.0,
        "write_timeout": 1.0,
        "backoff_initial": 0.05,
        "backoff_max": 0.5,
        "probe_delay": 0.05,
        "send_attempts": 8,
        "rate_limits": RateLimits(global_per_second=1000, chat_interval=0, group_per_minute=1000),
    }
    values.update(changes)
    return TelegramConfig(**values)


@dataclass
class Rig:
    api: FakeBotApi
    hub: Hub
    manager: ChannelManager
    plugin: TelegramPlugin

    @property
    def agent(self) -> AsyncAgent:
        return self.hub.default_agent

    async def ask(self, text: str, **kwargs: Any) -> int:
        """A user writes `text`; returns once the agent's run for it ended and its reply
        was sent. Returns the user's message id."""
        before = self.agent.last_run
        message_id = await self.api.user_says(text, **kwargs)
        await until(lambda: self.agent.last_run is not before, f"the run for {text!r}")
        await self.settle()
        return message_id

    async def settle(self) -> None:
        """Wait until the agent is idle and every queued send went out."""
        await self.agent.wait_idle()
        async with asyncio.timeout(30):
            await self.manager.drain()


@asynccontextmanager
async def telegram_rig(
    data_dir: Path,
    model: Model,
    *,
    typing_interval: float = 4.0,
    api: FakeBotApi | None = None,
    conversations: ConversationConfig | None = None,
    approvals: Approvals | None = None,
    agents: Sequence[AgentSetup] = (),
    **config: Any,
) -> AsyncIterator[Rig]:
    """`agents`, when given, replace the one agent answering with `model`."""
    fake = api or FakeBotApi(hang_seconds=1.5)
    if api is None:
        await fake.start()
    hub = Hub(
        data_dir,
        lambda: model,
        conversations=conversations,
        approvals=approvals,
        agents=agents,
    )
    plugin = TelegramPlugin(fast_config(fake, **config), hub.access)
    manager = ChannelManager(hub, typing_interval=typing_interval)
    manager.register(plugin)
    attach_probes(hub.health, manager)
    await manager.start()
    try:
        yield Rig(fake, hub, manager, plugin)
    finally:
        await manager.stop()
        await hub.close()
        if api is None:
            await fake.stop()


def telegram_health(hub: Hub) -> SubsystemHealth:
    """The Telegram plugin's line in the hub's health report."""
    return {s.name: s for s in hub.health.report().subsystems}["telegram"]


async def until(predicate: Callable[[], bool], what: str, limit: float = 15.0) -> None:
    """Wait for a condition the system under test brings about (a deadline, not a timing
    assertion: it only fails when the condition never happens)."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
