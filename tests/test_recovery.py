"""Crash recovery in-process: a session and a run journal as a crash leaves them (written
directly by tests/recovery_rig.py, so the moment of the crash is exact), then a new hub
recovers from them."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from hub.echo import EchoModel
from hub.events import AgentStart
from hub.hub import Hub
from hub.origin import Origin
from hub.recovery import JournalState, RecoveryConfig, RunJournal
from hub.recovery_service import LOST_NOTE, RERUN_NOTE, Recovery
from hub.sessions import MessageEntry, RunEntry
from tests.recovery_rig import ROUTE, Recovered, append_journal, crashed
from tests.telegram_rig import until


async def test_a_safe_run_is_closed_then_answered_again(data_dir: Path) -> None:
    await crashed(data_dir, tools=("web_fetch",))
    hub = Hub(data_dir, EchoModel)
    recovery = Recovery(hub, data_dir / "runs.jsonl")
    starts: list[AgentStart] = []
    hub.default_agent.subscribe(lambda e: starts.append(e) if isinstance(e, AgentStart) else None)
    try:
        await recovery.closing.start()
        await recovery.resuming.start()
        await until(lambda: len(starts) == 1, "the answer again")
        await hub.default_agent.wait_idle()
        entries = hub.default_agent.session.entries
    finally:
        await recovery.closing.stop()
        await hub.close()
    runs = [e for e in entries if isinstance(e, RunEntry)]
    assert [(r.run_id, r.status) for r in runs] == [
        ("r-crashed", "interrupted"),
        (starts[0].run_id, "completed"),
    ]
    messages = [(e.role, e.text, e.aborted) for e in entries if isinstance(e, MessageEntry)]
    # The question once, the note (aborted), the answer (echo repeats the question).
    assert messages == [
        ("user", "what is on today?", False),
        ("assistant", RERUN_NOTE, True),
        ("assistant", "what is on today?", False),
    ]
    (start,) = starts
    assert start.origin.source == "recovery" and start.origin.replay_of == "r-crashed"
    assert start.origin.route == ROUTE  # the answer goes back where the question came from
    assert recovery.rerun == ["r-crashed"] and recovery.told == []
    # seq never goes back: the closing entries come after what the crashed run saved.
    seqs = [e.seq for e in entries]
    assert seqs == sorted(seqs) and seqs[1] > 10
    # The journal starts over, holding only the new run (started and ended).
    assert RunJournal(data_dir / "runs.jsonl").load() == JournalState()


async def test_a_run_with_side_effects_is_told_not_rerun(
    data_dir: Path, recover: Recovered
) -> None:
    await crashed(data_dir, tools=("read_file", "shell"))
    await recover.run()
    assert recover.starts == []
    ((route, text),) = recover.delivered
    assert route == ROUTE
    assert "Nothing was re-run" in text and "shell" in text and "read_file" not in text
    statuses = [e.status for e in recover.entries if isinstance(e, RunEntry)]
    assert statuses == ["interrupted"]
    note = [e for e in recover.entries if isinstance(e, MessageEntry)][-1]
    assert note.text == text and note.aborted


async def test_policy_never_and_read_only_tools_from_config(data_dir: Path) -> None:
    await crashed(data_dir, tools=("mcp.search",))
    hub = Hub(data_dir, EchoModel)
    config = RecoveryConfig(read_only_tools=["mcp.search"], sessions={"main": "never"})
    recovery = Recovery(hub, data_dir / "runs.jsonl", config)
    told: list[str] = []
    recovery.deliver = lambda route, text: told.append(text)
    try:
        await recovery.closing.start()
        await recovery.resuming.start()
    finally:
        await recovery.closing.stop()
        await hub.close()
    assert recovery.rerun == [] and len(told) == 1
    assert config.policy("other") == "safe" and config.read_only("mcp.search")


async def test_a_question_that_was_never_saved(data_dir: Path, recover: Recovered) -> None:
    await crashed(data_dir, text=None)
    await recover.run()
    assert recover.starts == []
    assert [text for _, text in recover.delivered] == [LOST_NOTE]


async def test_web_runs_are_told_in_the_session(data_dir: Path, recover: Recovered) -> None:
    await crashed(data_dir, tools=("shell",), origin=Origin(surface="web", device_id="d-1"))
    await recover.run()
    assert recover.delivered == []  # no chat: the note in history is the message
    assert recover.recovery.told == ["r-crashed"]
    history = recover.hub.default_agent.history()
    assert "Nothing was re-run" in history[-1].text  # type: ignore[union-attr]


async def test_runs_the_hub_started_are_only_closed(data_dir: Path, recover: Recovered) -> None:
    await crashed(data_dir, origin=Origin(surface="channel", route=ROUTE, source="schedule"))
    await recover.run()
    assert recover.starts == [] and recover.delivered == []
    assert recover.recovery.closed == ["r-crashed"]


async def test_a_run_that_ended_is_left_alone(data_dir: Path, recover: Recovered) -> None:
    await crashed(data_dir, ended=True)
    await recover.run()
    assert recover.recovery.closed == []
    assert [e.status for e in recover.entries if isinstance(e, RunEntry)] == ["completed"]


async def test_a_corrupt_journal_keeps_what_it_can(
    data_dir: Path, recover: Recovered, caplog: pytest.LogCaptureFixture
) -> None:
    await crashed(data_dir, tools=("shell",))
    append_journal(
        data_dir,
        b"not json\n",
        b'{"op": "end", "runId": "r-other"}\n',
        b'{"op": "tool", "runId": "r-crashed", "to',  # torn
    )
    with caplog.at_level(logging.WARNING, "agenthub.recovery"):
        await recover.run()
    assert recover.recovery.told == ["r-crashed"]
    warnings = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(warnings) == 1 and "skipped 2 unreadable" in warnings[0]


async def test_the_journal_follows_live_runs(data_dir: Path, recover: Recovered) -> None:
    await recover.run()
    route_origin = Origin(surface="channel", route=ROUTE)
    recover.hub.submit("main", "hello", route_origin)
    await recover.hub.default_agent.wait_idle()
    lines = [json.loads(line) for line in (data_dir / "runs.jsonl").read_bytes().splitlines()]
    assert [line["op"] for line in lines] == ["accept", "start", "end"]
    assert lines[0]["sessionKey"] == lines[1]["sessionKey"]
    assert lines[1]["route"]["chatId"] == "900"  # the route events never carry
    assert (data_dir / "runs.jsonl").stat().st_mode & 0o777 == 0o600
