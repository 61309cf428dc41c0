"""Accepted turns survive a stop: every message `write` took is saved in its session before its
run starts, and the next start queues the ones that never started, in order, ahead of new
input; steering an interrupted run never took is answered too."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest

from hub.attachments import Attachment
from hub.echo import EchoModel
from hub.events import AgentEnd, AgentEvent, AgentStart
from hub.hub import Hub
from hub.media_store import MediaStore
from hub.model import ModelPart, ModelTurn, TextDelta
from hub.origin import Origin
from hub.recovery_service import Recovery
from hub.sessions import AcceptedEntry, MessageEntry, SessionStore, new_entry_id
from tests.recovery_rig import ROUTE, Recovered, append_journal, crashed, journal_line
from tests.telegram_rig import until

DESK = Origin(surface="desktop")


class Stuck:
    """Answers nothing until the process ends: the first turn holds the session."""

    def __init__(self) -> None:
        self.started = asyncio.Event()

    @property
    def name(self) -> str:
        return "stuck"

    async def stream(self, turn: ModelTurn) -> AsyncGenerator[ModelPart, None]:
        self.started.set()
        yield TextDelta("working")
        await asyncio.Event().wait()


async def started_hub(data_dir: Path, model: object) -> tuple[Hub, Recovery, list[AgentEvent]]:
    hub = Hub(data_dir, lambda: model)  # type: ignore[arg-type,return-value]
    recovery = Recovery(hub, data_dir / "runs.jsonl")
    events: list[AgentEvent] = []
    hub.default_agent.subscribe(events.append)
    await recovery.closing.start()
    return hub, recovery, events


async def held_hub(data_dir: Path) -> tuple[Hub, Recovery, list[AgentEvent]]:
    """A started hub whose first turn ("one") holds the session: what is written next waits."""
    stuck = Stuck()
    hub, recovery, events = await started_hub(data_dir, stuck)
    await recovery.resuming.start()
    hub.submit("main", "one", DESK)
    await stuck.started.wait()
    return hub, recovery, events


async def recovered_hub(data_dir: Path, model: object) -> tuple[Hub, Recovery, list[AgentEvent]]:
    """A hub started again, once recovery let the runs go and every one is answered."""
    hub, recovery, events = await started_hub(data_dir, model)
    await recovery.resuming.start()
    await hub.default_agent.wait_idle()
    return hub, recovery, events


async def stop(hub: Hub, recovery: Recovery) -> None:
    """Stop as the service does: the journal, then the hub."""
    await recovery.closing.stop()
    await hub.close()


async def test_turns_waiting_at_a_stop_are_answered_at_the_next_start(data_dir: Path) -> None:
    hub, recovery, _ = await held_hub(data_dir)
    waiting = [hub.submit("main", text, DESK) for text in ("two", "three")]
    assert await hub.default_agent.close() == 2
    saved = [e for e in hub.default_agent.session.entries if isinstance(e, AcceptedEntry)]
    assert [(e.text, e.run_id) for e in saved[1:]] == list(
        zip(("two", "three"), waiting, strict=True)
    )
    await stop(hub, recovery)

    again, recovery, events = await started_hub(data_dir, EchoModel())
    # Written after the restart but before recovery let runs go: answered after the others.
    later = again.submit("main", "four", DESK)
    await recovery.resuming.start()
    await again.default_agent.wait_idle()
    starts = [e.run_id for e in events if isinstance(e, AgentStart)]
    assert starts == [*waiting, later]
    assert recovery.requeued == waiting
    said = [
        (e.role, e.text)
        for e in again.default_agent.session.entries
        if isinstance(e, MessageEntry) and e.run_id in starts
    ]
    assert said == [(role, t) for t in ("two", "three", "four") for role in ("user", "assistant")]
    await stop(again, recovery)

    # Answered once: a third start finds nothing waiting.
    third, recovery, events = await recovered_hub(data_dir, EchoModel())
    assert recovery.requeued == [] and not events
    await stop(third, recovery)


async def test_a_collected_burst_comes_back_as_one_turn(data_dir: Path) -> None:
    hub, recovery, _ = await held_hub(data_dir)
    burst = {hub.submit("main", text, DESK, mode="collect") for text in ("a", "b")}
    await hub.close()
    await recovery.closing.stop()

    again, recovery, _ = await recovered_hub(data_dir, EchoModel())
    ((run_id, text),) = [
        (e.run_id, e.text)
        for e in again.default_agent.session.entries
        if isinstance(e, MessageEntry) and e.role == "user" and e.text != "one"
    ]
    assert {run_id} == burst and text == "a\n\nb"
    await stop(again, recovery)


def accept_line(run_id: str, session_id: str, agent_id: str = "main", **fields: object) -> bytes:
    """The journal's line for a message accepted into run `run_id` of session "main"."""
    return journal_line(
        "accept", runId=run_id, agentId=agent_id, sessionKey="main", sessionId=session_id, **fields
    )


async def steered_crash(data_dir: Path) -> None:
    """Run r-crashed took one of two steered messages before the crash."""
    await crashed(data_dir)
    session = SessionStore(data_dir).current("main")
    for text in ("make it cheap", "and fast"):
        await session.append(
            AcceptedEntry(
                id=new_entry_id("a"),
                run_id="r-crashed",
                seq=11,
                text=text,
                origin=Origin(surface="channel", route=ROUTE),
                route=ROUTE,
                steer=True,
            )
        )
    await session.append(
        MessageEntry(
            id=new_entry_id("m"), run_id="r-crashed", seq=12, role="user", text="make it cheap"
        )
    )
    accept = accept_line("r-crashed", session.session_id, steer=True)
    append_journal(data_dir, accept, accept)


async def test_steering_the_interrupted_run_never_took_is_answered_after_it(
    data_dir: Path, recover: Recovered
) -> None:
    await steered_crash(data_dir)
    await recover.run()
    texts = [e.origin.replay_of for e in recover.starts]
    assert texts == ["r-crashed", None]
    leftover = recover.starts[1]
    assert leftover.origin.route == ROUTE  # answered in the chat it came from
    answers = [
        e.text
        for e in recover.entries
        if isinstance(e, MessageEntry) and e.run_id == leftover.run_id
    ]
    assert answers == ["and fast", "and fast"]  # the user's message, then the echo


async def test_a_waiting_message_that_was_never_saved_is_reported(
    data_dir: Path, recover: Recovered, caplog: pytest.LogCaptureFixture
) -> None:
    session = SessionStore(data_dir).create("main", session_key="main")
    lines = [
        accept_line("r-lost", session.session_id),
        accept_line("r-gone", "no-such-file"),
        accept_line("r-x", session.session_id, agent_id="nobody"),
    ]
    (data_dir / "runs.jsonl").write_bytes(b"".join(lines))
    with caplog.at_level(logging.WARNING, logger="agenthub.recovery"):
        await recover.run()
    assert recover.starts == [] and recover.recovery.requeued == []
    warnings = " | ".join(r.getMessage() for r in caplog.records)
    assert "r-lost was not saved" in warnings
    assert "r-gone: its session is unreadable" in warnings
    assert "agent nobody is gone" in warnings
    # Reported once: the journal does not keep them for the next start.
    assert b"accept" not in (data_dir / "runs.jsonl").read_bytes()


async def test_the_journal_keeps_waiting_messages_when_it_starts_over(data_dir: Path) -> None:
    hub, recovery, events = await held_hub(data_dir)
    waiting = hub.submit("main", "two", DESK)
    recovery.journal.reset()  # as compaction does
    lines = [json.loads(line) for line in (data_dir / "runs.jsonl").read_bytes().splitlines()]
    assert [(line["op"], line["runId"]) for line in lines] == [("accept", waiting)]
    assert not any(isinstance(e, AgentEnd) for e in events)
    await hub.close()
    await recovery.closing.stop()


async def test_a_second_crash_before_they_were_queued_loses_no_waiting_turn(
    data_dir: Path,
) -> None:
    hub, recovery, _ = await held_hub(data_dir)
    waiting = hub.submit("main", "two", DESK)
    await hub.close()
    await recovery.closing.stop()

    # Started, but stopped again before recovery queued what was waiting.
    interrupted, recovery, _ = await started_hub(data_dir, EchoModel())
    await stop(interrupted, recovery)

    again, recovery, events = await recovered_hub(data_dir, EchoModel())
    assert [e.run_id for e in events if isinstance(e, AgentStart)] == [waiting]
    await stop(again, recovery)


class Seeing:
    """Takes images; records what each turn brought."""

    accepts_images = True

    def __init__(self) -> None:
        self.turns: list[tuple[str, list[str], list[bytes]]] = []

    @property
    def name(self) -> str:
        return "seeing"

    async def stream(self, turn: ModelTurn) -> AsyncGenerator[ModelPart, None]:
        self.turns.append(
            (turn.text, [i.ref.name for i in turn.images], [i.data for i in turn.images])
        )
        yield TextDelta("seen")


async def test_a_waiting_turn_comes_back_with_its_images(data_dir: Path) -> None:
    hub, recovery, _ = await held_hub(data_dir)
    photo = Attachment(name="cat.png", media_type="image/png", data=b"\x89PNG cat")
    hub.submit("main", "what is this?", DESK, attachments=[photo])
    await hub.close()
    await recovery.closing.stop()

    seeing = Seeing()
    again, recovery, _ = await recovered_hub(data_dir, seeing)
    assert seeing.turns == [("what is this?", ["cat.png"], [b"\x89PNG cat"])]
    await stop(again, recovery)


async def test_an_interrupted_run_is_answered_again_with_its_images(data_dir: Path) -> None:
    photo = Attachment(name="cat.png", media_type="image/png", data=b"\x89PNG cat")
    ref = MediaStore(data_dir).save("main", photo)
    await crashed(data_dir, text="what is this?", images=(ref,))
    seeing = Seeing()
    hub, recovery, _ = await started_hub(data_dir, seeing)
    await recovery.resuming.start()
    await until(lambda: bool(seeing.turns), "the answer again")
    await hub.default_agent.wait_idle()
    assert recovery.rerun == ["r-crashed"]
    assert seeing.turns == [("what is this?", ["cat.png"], [b"\x89PNG cat"])]
    await stop(hub, recovery)
