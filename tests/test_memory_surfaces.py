"""Seeing and trimming an agent's notes where people are: `/memory` and `/forget N` in
Telegram (the real python-telegram-bot against the local Bot API server), and
`agenthub ctl memory` over the control socket. Each person reaches only their own notes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from pydantic import JsonValue

from app.cli import main
from app.control_handlers import ProcessContext, process_methods
from app.control_server import ControlServer
from hub.conversations import NewSession
from hub.echo import EchoModel
from hub.errors import CodedError
from hub.hub import Hub
from hub.origin import Origin
from hub.requests import Caller, RequestHost, dispatch
from hub.requests.memory import MemoryAnswer
from hub.scopes import ConversationConfig
from hub.tools.memory import MemoryBook, memory_root
from tests.telegram_rig import telegram_rig
from tests.test_telegram_commands import GUEST, NEWCOMER, OWNER, command, say


def notes_of(data_dir: Path, whose: str, *notes: str) -> MemoryBook:
    book = MemoryBook(memory_root(data_dir), "main", whose)
    for note in notes:
        book.remember(note)
    return book


async def test_memory_and_forget_in_telegram_reach_only_the_senders_notes(
    data_dir: Path,
) -> None:
    notes_of(data_dir, "owner", "Owner likes jazz")
    guest = notes_of(data_dir, f"telegram:{GUEST}", "Guest is vegan", "Guest lives in Oslo")
    config = ConversationConfig(owners=frozenset({f"telegram:{OWNER}"}))
    async with telegram_rig(data_dir, EchoModel(pieces=1), conversations=config) as rig:
        assert await command(rig, "/memory", chat=NEWCOMER) == (
            "No notes yet: write a message first."
        )
        await say(rig, "hello", chat=GUEST)
        shown = await command(rig, "/memory", chat=GUEST)
        assert shown == (
            "What I remember about you:\n1. Guest is vegan\n2. Guest lives in Oslo\n"
            "Delete one with /forget N."
        )
        assert await command(rig, "/forget 1", chat=GUEST) == (
            "Forgot #1: Guest is vegan\nWhat I remember about you:\n1. Guest lives in Oslo\n"
            "Delete one with /forget N."
        )
        assert guest.notes() == ["Guest lives in Oslo"]
        assert await command(rig, "/forget", chat=GUEST) == (
            "Which note? Send /forget N, with N from /memory."
        )
        refused = await command(rig, "/forget 7", chat=GUEST)
        assert refused.startswith("[Error] there is no note #7 (there are notes 1 to 1)")

        await say(rig, "hi")
        mine = await command(rig, "/memory")
        assert mine.startswith("What I remember about you:\n1. Owner likes jazz\n")
        assert "Guest" not in mine
        await command(rig, "/forget 1")
        assert await command(rig, "/memory") == "I have no notes about you."
        assert "/memory — what the agent remembers about you" in await command(rig, "/help")


async def test_ctl_memory_lists_and_forgets(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub = Hub(data_dir, lambda: EchoModel(pieces=1))
    notes_of(data_dir, "owner", "Prefers short answers", "Works nights")
    host = RequestHost(access=hub.access, health=hub.health, hub=hub)
    process = process_methods(ProcessContext(mode="serve", request_shutdown=lambda: None))
    server = ControlServer(data_dir / "ctl.sock", host, process)
    await server.start()
    base = ["ctl", "--data-dir", str(data_dir), "memory"]
    try:
        capsys.readouterr()
        assert await asyncio.to_thread(main, base) == 0
        assert capsys.readouterr().out == (
            "notes for owner (agent main, session main):\n"
            "  1. Prefers short answers\n  2. Works nights\n"
        )
        assert await asyncio.to_thread(main, [*base, "forget", "2", "--json"]) == 0
        answer = json.loads(capsys.readouterr().out)["result"]
        assert answer["forgotten"] == "forgot #2: Works nights"
        assert answer["notes"] == ["Prefers short answers"]
        changed: dict[str, JsonValue] = {"sessionKey": "main", "number": 1, "note": "Works nights"}
        with pytest.raises(CodedError, match="note #1 changed meanwhile") as refused:
            await dispatch(host, Caller(surface="control", owner=True), "memory.forget", changed)
        assert refused.value.code == "memory"
        assert await asyncio.to_thread(main, [*base, "forget", "5"]) == 1
        assert "there is no note #5 (there are notes 1 to 1)" in capsys.readouterr().err
        assert await asyncio.to_thread(main, [*base, "--agent", "nobody"]) == 1
        assert "no agent 'nobody'" in capsys.readouterr().err
        assert await asyncio.to_thread(main, [*base, "--session", "nosuch"]) == 1
        assert "no session 'nosuch' for agent 'main'" in capsys.readouterr().err
    finally:
        await server.stop()
        await hub.close()


async def test_a_guest_device_reaches_its_own_notes_and_no_one_elses(data_dir: Path) -> None:
    config = ConversationConfig(guest_devices=frozenset({"guest-1"}))
    hub = Hub(data_dir, lambda: EchoModel(pieces=1), conversations=config)
    host = RequestHost(access=hub.access, health=hub.health, hub=hub)
    notes_of(data_dir, "owner", "Owner secret")
    notes_of(data_dir, "web:guest-1", "Guest plays chess")
    guest = Caller(surface="web", device_id="guest-1")
    new = await dispatch(host, guest, "sessions.new", {"agentId": "main"})
    assert isinstance(new, NewSession)
    chess = new.session_key
    hub.submit("main", "hello", Origin(surface="web", device_id="guest-1"), session_key=chess)
    await hub.default_agent.wait_idle()
    answer = await dispatch(host, guest, "memory.list", {"sessionKey": chess})
    assert isinstance(answer, MemoryAnswer) and answer.notes == ["Guest plays chess"]
    for key in ("main", "nosuch"):
        with pytest.raises(CodedError) as refused:
            await dispatch(host, guest, "memory.list", {"sessionKey": key})
        assert refused.value.code == "forbidden"
    # The owner sees the guest's conversation, and so the notes it uses.
    owner = Caller(surface="web", device_id="laptop", owner=True)
    seen = await dispatch(host, owner, "memory.list", {"sessionKey": chess})
    assert isinstance(seen, MemoryAnswer) and seen.whose == "web:guest-1"
    await hub.close()
