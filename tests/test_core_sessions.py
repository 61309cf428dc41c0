"""Sessions: JSONL round trip, torn and unreadable lines, history queries, compaction context,
seq continuity, and a child process SIGKILLed mid-append many times."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hub.sessions import (
    UNCLEAN_SEQ_GAP,
    CompactionEntry,
    MessageEntry,
    RunEntry,
    Session,
    SessionEntry,
    SessionStore,
    ToolEntry,
    load_session,
    validate_id,
)

REPO = Path(__file__).resolve().parent.parent


def message(n: int, role: str = "user", text: str | None = None) -> MessageEntry:
    return MessageEntry(
        id=f"m-{n}",
        run_id=f"r-{n}",
        seq=n,
        role="user" if role == "user" else "assistant",
        text=text if text is not None else f"message {n}",
    )


async def filled(store: SessionStore, count: int) -> Session:
    session = store.current("main")
    for n in range(1, count + 1):
        await session.append(message(n, "user" if n % 2 else "assistant"))
    return session


async def test_append_and_load_round_trip_every_entry_type(data_dir: Path) -> None:
    store = SessionStore(data_dir)
    session = store.current("main")
    entries: list[SessionEntry] = [
        message(1, text='héllo 🙂 \u2028 "quoted"\nnew line'),
        ToolEntry(
            id="t-1",
            run_id="r-1",
            seq=2,
            tool_call_id="c-1",
            tool_name="calc",
            args={"expr": "1+1", "nested": [1, None, True]},
            result=2,
            is_error=False,
        ),
        CompactionEntry(id="c-1", seq=3, first_kept_id="m-1", removed=4, kept=1, reason="full"),
        RunEntry(id="r-x", run_id="r-1", seq=4, status="failed", error_code="auth"),
    ]
    for entry in entries:
        await session.append(entry)
    loaded = load_session(session.path)
    assert loaded.header == session.header
    assert loaded.entries == entries
    assert store.session_ids("main") == [session.session_id]
    assert store.agent_ids() == ["main"]
    lines = session.path.read_text().split("\n")
    assert json.loads(lines[0])["type"] == "session"
    assert json.loads(lines[0])["agentId"] == "main"
    assert json.loads(lines[2])["toolCallId"] == "c-1"
    assert stat.S_IMODE(session.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(session.path.parent.stat().st_mode) == 0o700


async def test_torn_last_line_is_skipped_then_cut_before_the_next_append(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SessionStore(data_dir)
    session = await filled(store, 2)
    with session.path.open("ab") as handle:
        handle.write(b'{"type":"message","id":"m-3","runId":"r-3","seq":3,"role":"us')
    size = session.path.stat().st_size
    with caplog.at_level(logging.WARNING, logger="agenthub.sessions"):
        loaded = store.current("main")
    assert [e.id for e in loaded.entries] == ["m-1", "m-2"]
    assert "torn last line" in caplog.text
    assert session.path.stat().st_size == size  # loading never modifies the file
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="agenthub.sessions"):
        await loaded.append(message(3))
    assert "cutting a torn last line" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="agenthub.sessions"):
        again = load_session(session.path)
    assert [e.id for e in again.entries] == ["m-1", "m-2", "m-3"]
    assert caplog.text == ""


async def test_a_complete_but_unterminated_last_line_counts_as_torn(data_dir: Path) -> None:
    store = SessionStore(data_dir)
    session = await filled(store, 1)
    with session.path.open("ab") as handle:
        handle.write(message(2).model_dump_json().encode())
    assert [e.id for e in load_session(session.path).entries] == ["m-1"]
    await session.append(message(3))
    assert [e.id for e in load_session(session.path).entries] == ["m-1", "m-3"]


async def test_unreadable_lines_are_skipped_with_a_warning(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SessionStore(data_dir)
    session = await filled(store, 1)
    with session.path.open("ab") as handle:
        handle.write(b"not json at all\n")
        handle.write(b'{"type":"unknown","id":"x"}\n')
        handle.write(b"\xff\xfe garbage\n")
    await session.append(message(2))
    with caplog.at_level(logging.WARNING, logger="agenthub.sessions"):
        loaded = load_session(session.path)
    assert [e.id for e in loaded.entries] == ["m-1", "m-2"]
    assert caplog.text.count("skipping unreadable line") == 3


def test_a_file_without_header_is_refused_and_current_falls_back(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SessionStore(data_dir)
    first = store.create("main")
    broken = store.agent_dir("main") / "99999999T999999999999Z-broken.jsonl"
    broken.write_bytes(b"")
    with pytest.raises(ValueError, match="no session header"):
        load_session(broken)
    with caplog.at_level(logging.WARNING, logger="agenthub.sessions"):
        assert store.current("main").session_id == first.session_id
    assert "no session header" in caplog.text


def test_ids_that_would_escape_the_folder_are_refused(data_dir: Path) -> None:
    for bad in ["", "../x", "a/b", ".hidden", "x" * 65, "a b"]:
        with pytest.raises(ValueError, match="1-64 characters"):
            validate_id("agent id", bad)
    with pytest.raises(ValueError, match="agent id"):
        SessionStore(data_dir).current("../../etc")
    assert validate_id("agent id", "main-2_x.y") == "main-2_x.y"


async def test_history_limit_before_after(data_dir: Path) -> None:
    session = await filled(SessionStore(data_dir), 10)
    await session.append(
        CompactionEntry(id="c-1", seq=11, first_kept_id="m-8", removed=7, kept=3, reason="full")
    )
    await session.append(RunEntry(id="r-e", run_id="r-10", seq=12, status="completed"))

    def ids(entries: list[MessageEntry | ToolEntry]) -> list[str]:
        return [e.id for e in entries]

    assert ids(session.history()) == [f"m-{n}" for n in range(1, 11)]
    assert ids(session.history(limit=3)) == ["m-8", "m-9", "m-10"]
    assert ids(session.history(limit=0)) == []
    assert ids(session.history(limit=50)) == [f"m-{n}" for n in range(1, 11)]
    assert ids(session.history(before=4)) == ["m-1", "m-2", "m-3"]
    assert ids(session.history(limit=2, before=4)) == ["m-2", "m-3"]
    assert ids(session.history(after=8)) == ["m-9", "m-10"]
    assert ids(session.history(after=3, before=6)) == ["m-4", "m-5"]
    assert ids(session.history(after=10)) == []


async def test_context_after_compaction(data_dir: Path) -> None:
    session = await filled(SessionStore(data_dir), 6)
    assert [e.id for e in session.context()] == [f"m-{n}" for n in range(1, 7)]
    assert session.last_compaction() is None
    compaction = CompactionEntry(
        id="c-1", seq=7, first_kept_id="m-5", removed=4, kept=2, reason="full", summary="gist"
    )
    await session.append(compaction)
    await session.append(message(8))
    assert [e.id for e in session.context()] == ["m-5", "m-6", "m-8"]
    assert session.last_compaction() == compaction
    # A compaction whose first kept entry is unknown keeps only what follows it.
    await session.append(
        CompactionEntry(id="c-2", seq=9, first_kept_id=None, removed=3, kept=0, reason="full")
    )
    await session.append(message(10))
    assert [e.id for e in session.context()] == ["m-10"]
    reloaded = load_session(session.path)
    assert [e.id for e in reloaded.context()] == ["m-10"]
    assert len(reloaded.history()) == 8  # history keeps everything


async def test_new_session_keeps_seq_increasing(data_dir: Path) -> None:
    store = SessionStore(data_dir)
    first = await filled(store, 3)
    second = store.create("main", start_seq=first.last_seq)
    assert second.last_seq == 3
    assert store.current("main").session_id == second.session_id
    assert store.session_ids("main") == [first.session_id, second.session_id]
    await second.append(message(4))
    assert store.current("main").last_seq == 4


async def test_resume_seq_jumps_past_an_unclean_end(data_dir: Path) -> None:
    store = SessionStore(data_dir)
    session = store.current("main")
    assert session.resume_seq == 0
    await session.append(message(5))
    # The run never recorded its end: events after seq 5 may have been seen by clients.
    assert load_session(session.path).resume_seq == 5 + UNCLEAN_SEQ_GAP
    await session.append(RunEntry(id="r-e", run_id="r-5", seq=9, status="completed"))
    assert load_session(session.path).resume_seq == 9


async def test_a_cancelled_append_still_lands_in_file_and_memory(data_dir: Path) -> None:
    session = SessionStore(data_dir).current("main")
    task = asyncio.ensure_future(session.append(message(1)))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await session.append(message(2))  # queued behind the first: order is kept
    assert [e.id for e in session.entries] == ["m-1", "m-2"]
    assert [e.id for e in load_session(session.path).entries] == ["m-1", "m-2"]


async def test_a_failed_write_raises_and_keeps_memory_consistent(data_dir: Path) -> None:
    session = SessionStore(data_dir).current("main")
    await session.append(message(1))
    path, session.path = session.path, data_dir  # a directory: the write fails (EISDIR)
    with pytest.raises(IsADirectoryError):
        await session.append(message(2))
    session.path = path
    assert [e.id for e in session.entries] == ["m-1"]
    await session.append(message(3))
    assert [e.id for e in load_session(path).entries] == ["m-1", "m-3"]


# -- SIGKILL ------------------------------------------------------------------------------

# A real separate process: it imports the session code once, then for each round forks a writer
# that appends entries (printing each index once `append` returned) until it is SIGKILLed.
# Forking from a warm process keeps 25 rounds fast; the writer is what gets killed.
CHILD = """
import asyncio, os, sys, traceback
from pathlib import Path
from hub.sessions import MessageEntry, SessionStore

async def append_forever(data_dir: Path) -> None:
    session = SessionStore(data_dir).current("main")
    n = len(session.entries)
    while True:
        # Sizes up to 64 KB span many pages, so a kill can land inside one write.
        text = f"{n}:" + "x" * ((n * 7919) % 65_536)
        await session.append(
            MessageEntry(id=f"m-{n}", run_id="r", seq=n + 1, role="user", text=text)
        )
        # One write(2) of a few bytes to a pipe is atomic: a kill cannot tear an ack line.
        os.write(1, f"{n}\\n".encode())
        n += 1

for _ in sys.stdin:
    pid = os.fork()
    if pid == 0:
        # A writer only ends by SIGKILL; if it fails instead, it says why (stderr) and never
        # falls through into this loop.
        try:
            asyncio.run(append_forever(Path(sys.argv[1])))
        except BaseException:
            traceback.print_exc()
        os._exit(3)
    print(f"pid {pid}", flush=True)
    os.waitpid(pid, 0)
    print("dead", flush=True)
"""


def expected_text(n: int) -> str:
    return f"{n}:" + "x" * ((n * 7919) % 65_536)


@pytest.mark.slow
def test_sigkill_mid_append_loses_at_most_the_entry_being_written(
    data_dir: Path, tmp_path: Path
) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    rng = random.Random(20261121)
    store = SessionStore(data_dir)
    saved: list[str] = []
    errors = tmp_path / "child.err"
    child = subprocess.Popen(
        [sys.executable, str(script), str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errors.open("w"),
        env=env,
        text=True,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    writer = 0
    try:
        for _ in range(25):
            child.stdin.write("go\n")
            child.stdin.flush()
            writer = 0
            acked: list[int] = []
            wanted = rng.randint(1, 8)
            while not writer or len(acked) < wanted:
                line = child.stdout.readline()
                assert line, "the child process died"
                if line.startswith("pid "):
                    writer = int(line.split()[1])
                else:
                    acked.append(int(line))
            if rng.random() < 0.7:
                # Land inside the next append's write or fsync, not just between appends.
                end = os.times().elapsed + rng.random() * 0.004
                while os.times().elapsed < end:
                    pass
            try:
                os.kill(writer, signal.SIGKILL)
            except ProcessLookupError:
                pytest.fail(f"the writer ended before the kill:\n{errors.read_text()[-3000:]}")
            # Every ack the writer printed before it died counts, read or not.
            while (line := child.stdout.readline()) != "dead\n":
                assert line, "the child process died"
                acked.append(int(line))
            writer = 0  # reaped: its pid may be reused
            session = store.current("main")  # must load, whatever the kill left behind
            ids = [e.id for e in session.entries]
            assert ids[: len(saved)] == saved, "an entry that was already saved went missing"
            for n in acked:
                assert f"m-{n}" in ids, f"acked entry m-{n} was lost"
            assert len(ids) - (acked[-1] + 1) in (0, 1), "more than the entry being written"
            assert ids == [f"m-{n}" for n in range(len(ids))], "entries out of order"
            for n, entry in enumerate(session.entries):
                assert isinstance(entry, MessageEntry)
                assert entry.text == expected_text(n)
            saved = ids
    finally:
        if writer:  # a failed round leaves its writer running: it must not outlive the test
            with contextlib.suppress(ProcessLookupError):
                os.kill(writer, signal.SIGKILL)
        child.kill()
        child.wait()
        child.stdin.close()
        child.stdout.close()
    assert len(saved) >= 25


async def test_folders_are_owner_only_whatever_the_umask(data_dir: Path) -> None:
    from hub.agent import AsyncAgent
    from hub.echo import EchoModel

    old = os.umask(0)
    try:
        agent = AsyncAgent("main", EchoModel(), SessionStore(data_dir))
        agent.write("hello")
        await agent.wait_idle()
        await agent.close()
    finally:
        os.umask(old)
    for folder in (data_dir / "sessions", data_dir / "sessions" / "main"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    files = list((data_dir / "sessions" / "main").iterdir())
    assert {p.suffix for p in files} == {".jsonl", ".json"}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
