"""Crash recovery in-process, the rig: a session and a run journal left as a crash leaves them
(written directly, so the moment of the crash is exact), and a new hub that recovers from them
(`Recovered`, as the `recover` fixture). Loaded as a plugin by tests/conftest.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.attachments import AttachmentRef
from hub.echo import EchoModel
from hub.events import AgentEvent, AgentStart
from hub.hub import Hub
from hub.origin import ChannelRoute, Origin
from hub.recovery import RecoveryConfig
from hub.recovery_service import Recovery
from hub.sessions import MessageEntry, RunEntry, SessionStore, ToolEntry, new_entry_id

ROUTE = ChannelRoute(
    channel="telegram", chat_id="900", reply_to_message_id="12", user_id="900", chat_kind="private"
)


def journal_line(op: str, **fields: object) -> bytes:
    return json.dumps({"op": op, **fields}).encode() + b"\n"


def append_journal(data_dir: Path, *lines: bytes) -> None:
    """Add lines to the run journal as the process that crashed wrote them."""
    with (data_dir / "runs.jsonl").open("ab") as handle:
        handle.write(b"".join(lines))


async def crashed(
    data_dir: Path,
    *,
    run_id: str = "r-crashed",
    text: str | None = "what is on today?",
    tools: tuple[str, ...] = (),
    origin: Origin | None = None,
    ended: bool = False,
    images: tuple[AttachmentRef, ...] = (),
) -> None:
    """Leave `data_dir` as a kill -9 during run `run_id` would: the user's message saved (unless
    `text` is None), tool entries, no run entry, and the journal's start (and tool) lines."""
    origin = origin or Origin(surface="channel", route=ROUTE)
    session = SessionStore(data_dir).create("main", session_key="main")
    seq = 10
    if text is not None:
        await session.append(
            MessageEntry(
                id=new_entry_id("m"),
                run_id=run_id,
                seq=seq,
                role="user",
                text=text,
                attachments=images,
            )
        )
    for index, tool in enumerate(tools):
        await session.append(
            ToolEntry(
                id=new_entry_id("t"),
                run_id=run_id,
                seq=seq + 1 + index,
                tool_call_id=f"c{index}",
                tool_name=tool,
                args={},
                result="ok",
                is_error=False,
            )
        )
    if ended:
        await session.append(
            RunEntry(id=new_entry_id("r"), run_id=run_id, seq=40, status="completed")
        )
    start = {
        "runId": run_id,
        "agentId": "main",
        "sessionKey": "main",
        "origin": json.loads(origin.model_dump_json()),
        "route": json.loads(origin.route.model_dump_json()) if origin.route else None,
    }
    tool_lines = [journal_line("tool", runId=run_id, tool=tool) for tool in tools]
    append_journal(data_dir, journal_line("start", **start), *tool_lines)


class Recovered:
    """A hub started on the data directory a test left as a crash would (`run()`)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.delivered: list[tuple[ChannelRoute, str]] = []
        self.starts: list[AgentStart] = []
        self.events: list[AgentEvent] = []
        self._hub: Hub | None = None
        self._recovery: Recovery | None = None

    @property
    def hub(self) -> Hub:
        assert self._hub is not None
        return self._hub

    @property
    def recovery(self) -> Recovery:
        assert self._recovery is not None
        return self._recovery

    @property
    def entries(self) -> list[object]:
        return list(self.hub.default_agent.session.entries)

    async def run(self, *, resume: bool = True) -> None:
        self._hub = Hub(self.data_dir, EchoModel)
        self._recovery = Recovery(self._hub, self.data_dir / "runs.jsonl", RecoveryConfig())
        self._recovery.deliver = lambda route, text: self.delivered.append((route, text))

        def on_event(event: AgentEvent) -> None:
            self.events.append(event)
            if isinstance(event, AgentStart):
                self.starts.append(event)

        self._hub.default_agent.subscribe(on_event)
        await self._recovery.closing.start()
        if resume:
            await self._recovery.resuming.start()
        await self._hub.default_agent.wait_idle()

    async def close(self) -> None:
        if self._recovery is not None:
            await self._recovery.closing.stop()
        if self._hub is not None:
            await self._hub.close()


@pytest.fixture
async def recover(data_dir: Path) -> AsyncIterator[Recovered]:
    state = Recovered(data_dir)
    yield state
    await state.close()
