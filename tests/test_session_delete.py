"""`sessions.delete`: who may delete, what goes (files, index entry, photos only it holds),
what stays (other sessions' photos, usage totals, schedules), the `session_deleted` event, a
key written to again, the seq after a restart, refusals (a session answering, one waiting for
approval: stopping it denies the approval) and storage failures, the start-up sweep of photos
nothing names, and `agenthub ctl sessions delete`."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
from pydantic import JsonValue

from app.cli import main
from app.control_handlers import ProcessContext, process_methods
from app.control_server import ControlServer
from hub.approvals import Approvals
from hub.attachments import Attachment
from hub.errors import CodedError
from hub.events import AgentEvent, ApprovalResolved, SessionDeleted
from hub.hub import Hub
from hub.media_store import SWEEP_GRACE
from hub.origin import Origin
from hub.recovery_service import Recovery
from hub.requests import Caller, RequestHost, dispatch
from hub.sessions import MessageEntry
from hub.usage import PriceTable, UsageFile
from hub.usage_meter import UsageMeter
from hub.wire import WireModel
from tests.fake_openai import FakeOpenAI
from tests.telegram_rig import until
from tests.test_core_conversations import GatedEcho, dm, make_hub
from tests.web_pages import script_shell_call, shell_model

OWNER = Caller(surface="desktop", owner=True)
ALICE = Caller(surface="web", device_id="d-alice")
BOB = Caller(surface="web", device_id="d-bob")
WEB = Origin(surface="web")


def photo(data: bytes, name: str = "p.png") -> Attachment:
    return Attachment(name=name, media_type="image/png", data=data)


async def ask(hub: Hub, method: str, caller: Caller = OWNER, **params: JsonValue) -> WireModel:
    host = RequestHost(access=hub.access, health=hub.health, hub=hub)
    return await dispatch(host, caller, method, {"agentId": "main", **params})


async def new_session(hub: Hub, caller: Caller = OWNER) -> str:
    created = await ask(hub, "sessions.new", caller)
    key: str = created.model_dump()["sessionKey"]
    return key


async def say(hub: Hub, key: str, text: str, *photos: Attachment, origin: Origin = WEB) -> None:
    hub.submit("main", text, origin, session_key=key, attachments=photos)
    await hub.default_agent.wait_idle()


def media(data_dir: Path) -> set[str]:
    folder = data_dir / "media" / "main"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def session_files(data_dir: Path) -> set[str]:
    return {p.name for p in (data_dir / "sessions" / "main").glob("*.jsonl")}


def keys(hub: Hub) -> list[str]:
    return hub.default_agent.sessions.session_keys()


async def test_delete_removes_files_entry_and_only_its_own_photos(data_dir: Path) -> None:
    hub = make_hub(data_dir)
    events: list[AgentEvent] = []
    hub.default_agent.subscribe(events.append)
    try:
        key = await new_session(hub)
        await say(hub, key, "mine alone", photo(b"only here"))
        await say(hub, key, "shared", photo(b"also in main"))
        await say(
            hub, "main", "shared too", photo(b"also in main"), origin=Origin(surface="desktop")
        )
        await hub.default_agent.new_session(key)  # an older session of the key, kept readable
        await say(hub, key, "second session")
        before = session_files(data_dir)
        assert len(before) == 3 and len(media(data_dir)) == 2
        main_photo = next(
            e.attachments[0].id
            for e in hub.default_agent.history()
            if isinstance(e, MessageEntry) and e.attachments
        )

        answer = (await ask(hub, "sessions.delete", sessionKey=key)).model_dump(mode="json")

        assert answer == {
            "sessionKey": key,
            "filesRemoved": 2,
            "imagesRemoved": 1,
            "schedules": [],
        }
        assert media(data_dir) == {main_photo}
        assert len(session_files(data_dir)) == 1
        assert keys(hub) == ["main"]
        listed = (await ask(hub, "sessions.list")).model_dump()["sessions"]
        assert [s["sessionKey"] for s in listed] == ["main"]
        index = json.loads((data_dir / "sessions" / "main" / "index.json").read_text())
        assert list(index["sessions"]) == ["main"]
        deleted = [e for e in events if isinstance(e, SessionDeleted)]
        assert [(e.agent_id, e.session_key) for e in deleted] == [("main", key)]
        assert deleted[0].seq == hub.default_agent.last_seq
        with pytest.raises(CodedError) as caught:
            await ask(hub, "history", sessionKey=key)
        assert caught.value.code == "unknown_session"
    finally:
        await hub.close()
    # A restart agrees: the key is gone, and no seq a client saw is given out again.
    again = make_hub(data_dir)
    try:
        assert keys(again) == ["main"]
        assert again.default_agent.last_seq >= deleted[0].seq
    finally:
        await again.close()


def journal(data_dir: Path) -> list[dict[str, JsonValue]]:
    text = (data_dir / "runs.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


async def test_the_run_journal_forgets_the_session(data_dir: Path) -> None:
    hub = make_hub(data_dir)
    recovery = Recovery(hub, data_dir / "runs.jsonl")
    await recovery.closing.start()
    await recovery.resuming.start()
    try:
        key = await new_session(hub)
        await say(hub, key, "secret plans")
        await say(hub, "main", "hello", origin=Origin(surface="desktop"))
        lines = journal(data_dir)
        theirs = {line["runId"] for line in lines if line.get("sessionKey") == key}
        mine = [line for line in lines if line["runId"] not in theirs]
        assert theirs and mine

        await ask(hub, "sessions.delete", sessionKey=key)

        await until(lambda: journal(data_dir) == mine, "the journal without the session's runs")
    finally:
        await recovery.closing.stop()
        await hub.close()


async def test_a_key_written_to_again_starts_fresh(data_dir: Path) -> None:
    hub = make_hub(data_dir)
    try:
        chat = Origin(surface="channel", route=dm("333"))
        hub.submit("main", "first life", chat)
        await hub.default_agent.wait_idle()
        (key,) = [k for k in keys(hub) if k != "main"]
        await ask(hub, "sessions.rename", sessionKey=key, title="old name")
        await ask(hub, "sessions.mode", sessionKey=key, mode="collect")
        old_id = hub.default_agent.sessions.meta(key).session_id  # type: ignore[union-attr]
        await ask(hub, "sessions.delete", sessionKey=key)

        hub.submit("main", "second life", chat)
        await hub.default_agent.wait_idle()
        meta = hub.default_agent.sessions.meta(key)
        assert meta is not None and meta.session_id != old_id
        assert (meta.title, meta.mode, meta.messages, meta.previous) == (
            "second life",
            "queue",
            2,
            [],
        )
        texts = [
            e.text
            for e in hub.default_agent.history(session_key=key)
            if isinstance(e, MessageEntry)
        ]
        assert "first life" not in " ".join(texts)
        assert meta.route is not None and meta.route.chat_id == "333"
    finally:
        await hub.close()


async def test_who_may_delete_and_refusals_that_leak_nothing(data_dir: Path) -> None:
    hub = make_hub(data_dir)
    try:
        alices = await new_session(hub, ALICE)
        owners = await new_session(hub)
        for caller, key in ((BOB, alices), (BOB, "web:nosuch"), (ALICE, owners), (BOB, "main")):
            with pytest.raises(CodedError) as caught:
                await ask(hub, "sessions.delete", caller, sessionKey=key)
            assert caught.value.code == "forbidden", (caller, key)
            assert str(caught.value) == f"session {key!r} is not yours to see"
        with pytest.raises(CodedError) as caught:
            await ask(hub, "sessions.delete", sessionKey="web:nosuch")
        assert caught.value.code == "unknown_session"
        with pytest.raises(CodedError) as caught:
            await ask(hub, "sessions.delete", sessionKey="main")
        assert caught.value.code == "forbidden" and "main" in str(caught.value)
        with pytest.raises(CodedError) as caught:
            await ask(hub, "sessions.delete", sessionKey="bad key")
        assert caught.value.code == "invalid_session_key"
        with pytest.raises(CodedError) as caught:
            await ask(hub, "sessions.delete", agentId="nobody", sessionKey=owners)
        assert caught.value.code == "unknown_agent"
        with pytest.raises(CodedError) as caught:
            await ask(hub, "sessions.delete")
        assert caught.value.code == "invalid_params" and "sessionKey" in str(caught.value)
        # A guest deletes its own; the owner deletes anyone's.
        await ask(hub, "sessions.delete", ALICE, sessionKey=alices)
        await ask(hub, "sessions.delete", sessionKey=owners)
        assert keys(hub) == []
    finally:
        await hub.close()


async def test_a_session_answering_is_refused_until_stopped(data_dir: Path) -> None:
    model = GatedEcho()
    hub = make_hub(data_dir, model)
    try:
        key = await new_session(hub)
        hub.submit("main", "slow reply", WEB, session_key=key, attachments=[photo(b"in flight")])
        await until(lambda: bool(model.running), "the run to start")
        with pytest.raises(CodedError) as caught:
            await ask(hub, "sessions.delete", sessionKey=key)
        assert caught.value.code == "busy"
        assert "stop the reply" in str(caught.value)
        assert key in keys(hub) and len(media(data_dir)) == 1
        assert hub.default_agent.abort(key)
        await hub.default_agent.wait_idle()
        deleted = (await ask(hub, "sessions.delete", sessionKey=key)).model_dump()
        assert deleted["imagesRemoved"] == 1 and media(data_dir) == set()
    finally:
        await hub.close()


async def test_a_session_waiting_for_approval_is_refused_and_stopping_denies_it(
    data_dir: Path, provider: FakeOpenAI
) -> None:
    approvals = Approvals()
    hub = Hub(
        data_dir,
        lambda: shell_model(provider, data_dir, approvals),
        approvals=approvals,
    )
    events: list[AgentEvent] = []
    hub.default_agent.subscribe(events.append)
    try:
        key = await new_session(hub)
        script_shell_call(provider, "rm -rf notes", "never run", "call-1")
        hub.submit("main", "tidy up", WEB, session_key=key)
        await until(lambda: bool(approvals.pending()), "the approval request")
        with pytest.raises(CodedError) as caught:
            await ask(hub, "sessions.delete", sessionKey=key)
        assert caught.value.code == "busy"
        assert hub.default_agent.abort(key)
        await hub.default_agent.wait_idle()
        (resolved,) = [e for e in events if isinstance(e, ApprovalResolved)]
        assert (resolved.session_key, resolved.decision, resolved.by) == (key, "denied", "abort")
        await ask(hub, "sessions.delete", sessionKey=key)
        assert key not in keys(hub) and approvals.pending() == []
    finally:
        await hub.close()


async def test_a_photo_a_queued_turn_carries_is_kept(data_dir: Path) -> None:
    model = GatedEcho()
    model.gates["free"] = asyncio.Event()
    model.gates["free"].set()
    hub = make_hub(data_dir, model)
    try:
        done = await new_session(hub)
        await say(hub, done, "free photo", photo(b"same photo"))
        hub.submit("main", "held first", WEB)
        await until(lambda: bool(model.running), "the first run to start")
        # Queued behind it, the same photo: stored already, named only in memory so far.
        hub.submit("main", "held second", WEB, attachments=[photo(b"same photo")])
        deleted = (await ask(hub, "sessions.delete", sessionKey=done)).model_dump()
        assert deleted["imagesRemoved"] == 0 and len(media(data_dir)) == 1
        model.gates["held"].set()
        await hub.default_agent.wait_idle()
        assert len(media(data_dir)) == 1
    finally:
        await hub.close()


async def test_files_that_cannot_be_removed_are_a_storage_error(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = make_hub(data_dir)
    try:
        key = await new_session(hub)
        await say(hub, key, "keep me")

        def refuse(self: Path, missing_ok: bool = False) -> None:
            raise PermissionError(13, "Permission denied")

        with monkeypatch.context() as patch:
            patch.setattr(Path, "unlink", refuse)
            with pytest.raises(CodedError) as caught:
                await ask(hub, "sessions.delete", sessionKey=key)
        assert caught.value.code == "storage"
        assert "Permission denied" in str(caught.value) and str(data_dir) not in str(caught.value)
        assert key in keys(hub)
        await ask(hub, "sessions.delete", sessionKey=key)
        assert key not in keys(hub)
    finally:
        await hub.close()


async def test_unreadable_session_files_keep_the_photos(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    hub = make_hub(data_dir)
    try:
        key = await new_session(hub)
        await say(hub, key, "photo", photo(b"kept for now"))
        other = await new_session(hub)
        await say(hub, other, "other")
        real = Path.read_bytes
        meta = hub.default_agent.sessions.meta(other)
        assert meta is not None
        other_file = data_dir / "sessions" / "main" / f"{meta.session_id}.jsonl"

        def flaky(self: Path) -> bytes:
            if self == other_file:
                raise PermissionError(13, "Permission denied")
            return real(self)

        monkeypatch.setattr(Path, "read_bytes", flaky)
        deleted = (await ask(hub, "sessions.delete", sessionKey=key)).model_dump()
        assert deleted["imagesRemoved"] == 0 and len(media(data_dir)) == 1
        assert key not in keys(hub)
        assert "kept for now" in caplog.text
    finally:
        await hub.close()


async def test_schedules_in_the_session_are_named_and_keep_running(data_dir: Path) -> None:
    hub = make_hub(data_dir)
    try:
        key = await new_session(hub)
        await say(hub, key, "hello")
        await dispatch(
            RequestHost(access=hub.access, health=hub.health, hub=hub),
            OWNER,
            "schedules.add",
            {"name": "daily", "cron": "0 9 * * *", "prompt": "news", "session": key},
        )
        deleted = (await ask(hub, "sessions.delete", sessionKey=key)).model_dump()
        assert deleted["schedules"] == ["daily"]
        ran = await dispatch(
            RequestHost(access=hub.access, health=hub.health, hub=hub),
            OWNER,
            "schedules.run",
            {"name": "daily"},
        )
        assert ran.model_dump()["runId"]
        await hub.default_agent.wait_idle()
        meta = hub.default_agent.sessions.meta(key)
        assert meta is not None and meta.messages == 2
    finally:
        await hub.close()


async def test_usage_totals_outlive_the_session(data_dir: Path) -> None:
    hub = make_hub(data_dir)
    meter = UsageMeter(hub, data_dir / "usage.jsonl", PriceTable())
    await meter.start()
    try:
        key = await new_session(hub)
        await say(hub, key, "count these tokens")
        await until(lambda: len(list(UsageFile(data_dir / "usage.jsonl").read())) == 1, "usage")
        await ask(hub, "sessions.delete", sessionKey=key)
        report = (await ask(hub, "usage", sessionKey=key)).model_dump()
        assert [s["sessionKey"] for s in report["sessions"]] == [key]
        assert (report["sessions"][0]["runs"], report["sessions"][0]["inputTokens"]) == (1, 3)
    finally:
        await meter.stop()
        await hub.close()


def _age(path: Path, seconds: float) -> None:
    moment = time.time() - seconds
    os.utime(path, (moment, moment))


async def test_start_up_sweeps_old_photos_nothing_names(data_dir: Path) -> None:
    hub = make_hub(data_dir)
    try:
        key = await new_session(hub)
        await say(hub, key, "named", photo(b"named photo"))
    finally:
        await hub.close()
    folder = data_dir / "media" / "main"
    (named,) = media(data_dir)
    stray_old = hub.media.save("main", photo(b"refused turn")).id
    stray_new = hub.media.save("main", photo(b"turn in flight")).id
    partial = folder / f".{stray_old}.123.part"
    partial.write_bytes(b"torn")
    for name in (named, stray_old, partial.name):
        _age(folder / name, SWEEP_GRACE + 60)

    again = make_hub(data_dir)
    await again.close()

    assert media(data_dir) == {named, stray_new}


async def test_ctl_sessions_delete(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hub = make_hub(data_dir)
    host = RequestHost(access=hub.access, health=hub.health, hub=hub)
    process = process_methods(ProcessContext(mode="serve", request_shutdown=lambda: None))
    server = ControlServer(data_dir / "ctl.sock", host, process)
    await server.start()
    base = ["ctl", "--data-dir", str(data_dir)]
    try:
        first, second = await new_session(hub), await new_session(hub)
        await say(hub, first, "one", photo(b"ctl photo"))
        await say(hub, second, "two")
        capsys.readouterr()
        status = await asyncio.to_thread(main, [*base, "sessions", "delete", "main", first])
        out = capsys.readouterr().out
        assert status == 0
        assert out.strip() == (
            f"deleted {first}: 1 session file(s), 1 photo(s) no other conversation holds"
        )
        status = await asyncio.to_thread(
            main, [*base, "sessions", "delete", "main", second, "--json"]
        )
        answer = json.loads(capsys.readouterr().out)
        assert status == 0 and answer["result"]["sessionKey"] == second
        status = await asyncio.to_thread(main, [*base, "sessions", "delete", "main", second])
        captured = capsys.readouterr()
        assert status == 1 and f"no session {second!r}" in captured.err
        # `ctl sessions` itself is as it was.
        assert await asyncio.to_thread(main, [*base, "sessions", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)["result"]["sessions"]
        assert listed == []  # main was never written to
    finally:
        await server.stop()
        await hub.close()
