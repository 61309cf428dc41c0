"""SessionRegistry: each key's history back after a restart, the index rebuilt from the files
when stale or missing, legacy files as `main`, idle sessions unloaded and read again, and a
session file deleted on disk while loaded."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from hub.agent import AsyncAgent
from hub.echo import EchoModel
from hub.events import AgentError, AgentEvent
from hub.session_index import IndexFile, SessionIndex, read_index
from hub.sessions import MessageEntry, SessionStore
from tests.test_gateway_support import eventually


def make_agent(data_dir: Path, loaded_sessions: int = 256) -> AsyncAgent:
    store = SessionStore(data_dir)
    return AsyncAgent("main", EchoModel(pieces=2), store, loaded_sessions=loaded_sessions)


def texts(agent: AsyncAgent, key: str) -> list[str]:
    return [e.text for e in agent.history(session_key=key) if isinstance(e, MessageEntry)]


async def chat(agent: AsyncAgent, key: str, *messages: str) -> None:
    for message in messages:
        agent.write(message, session_key=key)
    await agent.wait_idle()


async def test_each_key_gets_its_history_back_after_a_restart(data_dir: Path) -> None:
    first = make_agent(data_dir)
    await chat(first, "main", "one")
    await chat(first, "telegram:dm:5", "two", "three")
    seq = first.last_seq
    await first.close()

    second = make_agent(data_dir)
    assert texts(second, "main") == ["one", "one"]
    assert texts(second, "telegram:dm:5") == ["two", "two", "three", "three"]
    assert second.last_seq == seq
    meta = second.sessions.meta("telegram:dm:5")
    assert meta is not None
    assert (meta.title, meta.messages) == ("two", 4)
    await second.close()


@pytest.mark.parametrize("damage", ["deleted", "garbage", "stale"])
async def test_a_missing_or_stale_index_is_rebuilt_from_the_files(
    data_dir: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    agent = make_agent(data_dir)
    await chat(agent, "a", "first in a")
    await chat(agent, "b", "first in b")
    index = agent.sessions.index_path
    agent.sessions.flush()
    before = index.read_bytes()
    await chat(agent, "a", "second in a")
    await agent.close()
    if damage == "deleted":
        index.unlink()
    elif damage == "garbage":
        index.write_text("{not json")
    else:
        index.write_bytes(before)  # as if the hub died before writing it again
    with caplog.at_level(logging.WARNING, logger="agenthub.sessions"):
        again = make_agent(data_dir)
    meta = again.sessions.meta("a")
    assert meta is not None
    assert (meta.title, meta.messages) == ("first in a", 4)
    assert texts(again, "b") == ["first in b", "first in b"]
    if damage == "garbage":
        assert "unreadable session index" in caplog.text
    await again.close()


async def test_a_session_file_from_before_keys_becomes_main(data_dir: Path) -> None:
    store = SessionStore(data_dir)
    legacy = store.create("main")  # no key in its header, as files were written before
    await legacy.append(MessageEntry(id="m-1", run_id="r-1", seq=3, role="user", text="old"))
    header = json.loads(legacy.path.read_text().splitlines()[0])
    assert header["sessionKey"] is None
    agent = make_agent(data_dir)
    assert agent.session.session_id == legacy.session_id
    assert texts(agent, "main") == ["old"]
    assert agent.last_seq > 3  # the old run never ended: seq jumps past it
    await agent.close()


async def test_idle_sessions_are_unloaded_and_read_again(data_dir: Path) -> None:
    agent = make_agent(data_dir, loaded_sessions=3)
    for n in range(12):
        agent.write(f"hello {n}", session_key=f"k{n}")
    await agent.wait_idle()
    assert agent.sessions.loaded_count <= 3
    assert len(agent.sessions) == 12
    for n in range(12):
        assert texts(agent, f"k{n}") == [f"hello {n}", f"hello {n}"]
    assert agent.sessions.loaded_count <= 3
    await agent.close()


async def test_a_session_deleted_on_disk_between_runs_starts_anew(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    agent = make_agent(data_dir)
    await chat(agent, "k", "before")
    gone = agent.sessions.current("k")
    gone.path.unlink()
    with caplog.at_level(logging.WARNING, logger="agenthub.sessions"):
        await chat(agent, "k", "after")
    assert "deleted on disk" in caplog.text
    now = agent.sessions.current("k")
    assert now.session_id != gone.session_id
    assert texts(agent, "k") == ["after", "after"]
    await agent.close()


async def test_a_session_deleted_on_disk_mid_run_fails_the_run_clearly(data_dir: Path) -> None:
    agent = make_agent(data_dir)
    events: list[AgentEvent] = []

    def delete_on_start(event: AgentEvent) -> None:
        events.append(event)
        if event.type == "message_end" and len(events) < 4:
            agent.sessions.current("k").path.unlink(missing_ok=True)

    agent.subscribe(delete_on_start)
    agent.write("doomed", session_key="k")
    await agent.wait_idle()
    errors = [e for e in events if isinstance(e, AgentError)]
    assert [(e.code, e.session_key) for e in errors] == [("storage", "k")]
    assert "deleted on disk" in errors[0].message
    assert events[-1].type == "agent_end"
    await chat(agent, "k", "next")
    assert texts(agent, "k") == ["next", "next"]  # in a new session of the key
    await agent.close()


async def test_index_writes_coalesce_and_a_failed_write_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    snapshots = []

    def snapshot() -> SessionIndex:
        snapshots.append(1)
        return SessionIndex(seq_floor=len(snapshots))

    index = IndexFile(tmp_path / "index.json", snapshot, lambda: tmp_path, delay=0.01)
    for _ in range(5):
        index.schedule()
    await eventually(lambda: (tmp_path / "index.json").exists())
    assert len(snapshots) == 1  # five changes, one write
    assert read_index(tmp_path / "index.json").seq_floor == 1

    blocked = IndexFile(tmp_path / "index.json", snapshot, lambda: tmp_path, delay=0.01)
    (tmp_path / "index.json").unlink()
    (tmp_path / "index.json").mkdir()  # a directory where the file belongs: the write fails
    blocked.write()
    assert "could not save the session index" in caplog.text
