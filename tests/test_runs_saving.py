"""A run's user message is saved while the model request goes out (the time to first token
does not pay for the fsync), and the reply still follows it: in the events and on disk."""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest

from hub.agent import AsyncAgent
from hub.echo import EchoModel
from hub.events import AgentEvent, MessageEnd, MessageStart
from hub.jsonl_files import append_line
from hub.model import ModelPart, ModelTurn
from hub.sessions import MessageEntry, SessionStore


class CalledModel(EchoModel):
    """Echo, noting that the request went out (and what the subscriber had seen by then)."""

    def __init__(self, seen: list[AgentEvent]) -> None:
        super().__init__(pieces=3)
        self.called = threading.Event()
        self.seen = seen
        self.seen_at_call: list[AgentEvent] = []

    async def stream(self, turn: ModelTurn) -> AsyncGenerator[ModelPart, None]:
        self.seen_at_call = list(self.seen)
        self.called.set()
        async for part in super().stream(turn):
            yield part


async def test_the_request_goes_out_before_the_message_is_on_disk(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[AgentEvent] = []
    model = CalledModel(seen)

    called_meanwhile: list[bool] = []

    def append_after_the_request(path: Path, line: bytes, *, create: bool) -> None:
        # The user's message (the session's second line, after the accepted one) waits, in
        # its thread, until the model was called: were the request waiting for it, it would
        # time out.
        called_meanwhile.append(model.called.wait(10))
        append_line(path, line, create=create)

    monkeypatch.setattr("hub.sessions.append_line", append_after_the_request)
    agent = AsyncAgent("main", model, SessionStore(data_dir))
    agent.subscribe(seen.append)
    try:
        agent.write("hello there")
        await agent.wait_idle()
    finally:
        await agent.close()

    assert called_meanwhile[0] is True
    assert not any(isinstance(e, MessageEnd) for e in model.seen_at_call)
    kinds = [(type(e).__name__, getattr(e, "role", None)) for e in seen]
    user_end = kinds.index(("MessageEnd", "user"))
    assistant_start = kinds.index(("MessageStart", "assistant"))
    assert user_end < assistant_start
    assert [e.seq for e in seen] == sorted(e.seq for e in seen)
    assert isinstance(seen[assistant_start], MessageStart)
    saved = [(e.role, e.text) for e in agent.session.entries if isinstance(e, MessageEntry)]
    assert saved == [("user", "hello there"), ("assistant", "hello there")]
