"""Memory: notes kept per person across conversations. The notes file (caps, duplicates, hand
edits, failures), whose notes a session uses, and end to end through the hub with the real
openai client: a note saved in one conversation is in the next one's instructions, and never
in another person's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.echo import EchoModel
from hub.hub import Hub
from hub.origin import ChannelRoute, Origin
from hub.providers import ModelConfig, build_model
from hub.run_watch import submit_watched
from hub.scopes import ConversationConfig, memory_scope
from hub.tools.memory import MAX_NOTE_CHARS, MAX_NOTES, MemoryBook, MemoryBookError
from tests.fake_openai import FakeOpenAI, RecordedRequest, Reply, ToolCall


@pytest.fixture
def book(tmp_path: Path) -> MemoryBook:
    return MemoryBook(tmp_path / "memory", "main", "telegram:5")


def test_notes_are_numbered_kept_once_and_forgotten_by_number(
    book: MemoryBook, tmp_path: Path
) -> None:
    assert book.prompt() is None
    assert book.remember("  Prefers   tea\nover coffee ") == "remembered as #1"
    assert book.remember("Lives in Lyon") == "remembered as #2"
    assert book.remember("Prefers tea over coffee") == "already noted as #1"
    assert book.path == tmp_path / "memory" / "main" / "telegram_5.md"
    assert book.path.read_text() == "- Prefers tea over coffee\n- Lives in Lyon\n"
    assert oct(book.path.stat().st_mode & 0o777) == "0o600"
    prompt = book.prompt()
    assert prompt is not None and prompt.endswith("1. Prefers tea over coffee\n2. Lives in Lyon")
    assert book.forget(1) == "forgot #1: Prefers tea over coffee"
    assert book.notes() == ["Lives in Lyon"]


async def test_notes_saved_at_once_are_all_kept(tmp_path: Path) -> None:
    book = MemoryBook(tmp_path / "memory", "main", "owner")
    saved = await asyncio.gather(
        *(asyncio.to_thread(book.remember, f"fact {n}") for n in range(20))
    )
    assert sorted(saved) == sorted(f"remembered as #{n}" for n in range(1, 21))
    assert sorted(book.notes()) == sorted(f"fact {n}" for n in range(20))


def test_forget_with_the_note_seen_refuses_a_note_that_changed(book: MemoryBook) -> None:
    book.remember("Has a dog")
    book.remember("Likes rain")
    book.forget(1)  # another client: "Likes rain" is #1 now
    with pytest.raises(MemoryBookError, match=r"note #1 changed meanwhile.*'Likes rain'"):
        book.forget(1, "Has a dog")
    assert book.notes() == ["Likes rain"]
    assert book.forget(1, " Likes  rain ") == "forgot #1: Likes rain"


def test_a_hand_edited_file_is_read_as_its_bullets(book: MemoryBook) -> None:
    book.path.parent.mkdir(parents=True)
    book.path.write_text("# Notes about Ana\n\n- Has a cat named Io\nsome stray text\n- Vegan\n")
    assert book.notes() == ["Has a cat named Io", "Vegan"]
    assert book.remember("Runs on Sundays") == "remembered as #3"
    assert book.notes() == ["Has a cat named Io", "Vegan", "Runs on Sundays"]
    assert book.forget(2) == "forgot #2: Vegan"
    assert book.path.read_text() == (
        "# Notes about Ana\n\n- Has a cat named Io\nsome stray text\n- Runs on Sundays\n"
    )


def test_refusals_say_what_to_do(book: MemoryBook) -> None:
    with pytest.raises(MemoryBookError, match="the note is empty"):
        book.remember("   ")
    with pytest.raises(MemoryBookError, match=f"at most {MAX_NOTE_CHARS} characters"):
        book.remember("x" * (MAX_NOTE_CHARS + 1))
    with pytest.raises(MemoryBookError, match=r"no note #1 \(there are no notes\)"):
        book.forget(1)
    for n in range(MAX_NOTES):
        book.remember(f"fact {n}")
    with pytest.raises(MemoryBookError, match=r"memory is full.*forget one"):
        book.remember("one too many")
    with pytest.raises(MemoryBookError, match=rf"no note #0 \(there are notes 1 to {MAX_NOTES}\)"):
        book.forget(0)


def test_unreadable_or_unwritable_notes_are_clear_errors(tmp_path: Path) -> None:
    blocked = MemoryBook(tmp_path / "memory", "main", "owner")
    blocked.path.mkdir(parents=True)  # a folder where the file belongs
    with pytest.raises(MemoryBookError, match="could not be read"):
        blocked.notes()
    unwritable = MemoryBook(tmp_path / "memory", "main", "web:d-1")
    unwritable.remember("kept")
    # A folder where the temporary file of the next save goes: that save fails, nothing lost.
    unwritable.path.with_name(unwritable.path.name + ".tmp").mkdir()
    with pytest.raises(MemoryBookError, match="could not be saved"):
        unwritable.remember("x")
    assert unwritable.notes() == ["kept"]


def test_agent_ids_and_scopes_cannot_reach_outside_the_memory_folder(tmp_path: Path) -> None:
    for agent_id, scope in (("../x", "../../etc/passwd"), ("..", ".."), (".", ".hidden")):
        book = MemoryBook(tmp_path / "memory", agent_id, scope)
        assert book.path.parent.parent == tmp_path / "memory"
        assert not book.path.parent.name.startswith(".")
        assert not book.path.name.startswith(".")


OWNED = ConversationConfig(
    owners=frozenset({"telegram:1"}),
    identity_links={"ana": ["telegram:7", "web:ana-phone"]},
    guest_devices=frozenset({"guest-1", "ana-phone"}),
)


@pytest.mark.parametrize(
    ("key", "members", "scope"),
    [
        ("main", ["telegram:9"], "owner"),
        ("notes", ["desktop", "web:laptop"], "owner"),
        ("notes", ["desktop", "web:guest-1"], "web:guest-1"),
        ("trip", ["web:ana-phone"], "peer:ana"),
        ("telegram:dm:9", [], "telegram:9"),
        ("telegram:dm:7", [], "peer:ana"),
        ("telegram:dm:1", [], "owner"),
        ("peer:ana", [], "peer:ana"),
        ("peer:telegram:9", [], "telegram:9"),
        ("peer:telegram:1", [], "owner"),
        ("telegram:group:-100", ["telegram:1", "telegram:9"], "telegram:group:-100"),
        ("telegram:group:-100:topic:3", [], "telegram:group:-100"),
    ],
)
def test_whose_notes_a_session_uses(key: str, members: list[str], scope: str) -> None:
    assert memory_scope(key, members, OWNED) == scope


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


def hub_for(server: FakeOpenAI, data_dir: Path, **tooling: object) -> Hub:
    config = ModelConfig.model_validate(
        {
            "spec": "openai:gpt-test",
            "openai_base_url": server.base_url,
            "tooling": {"memory_root": data_dir / "memory", **tooling},
        }
    )
    return Hub(
        data_dir,
        lambda: build_model(config),
        conversations=ConversationConfig(owners=frozenset({"telegram:1"})),
    )


def instructions(request: RecordedRequest) -> str:
    return "\n".join(
        str(m["content"]) for m in request.messages if m["role"] in ("system", "developer")
    )


def dm(user: str) -> Origin:
    route = ChannelRoute(channel="telegram", chat_id=user, user_id=user, chat_kind="private")
    return Origin(surface="channel", route=route)


async def answer(hub: Hub, text: str, origin: Origin, session_key: str | None = None) -> str:
    run = submit_watched(hub, "main", text, origin, session_key=session_key)
    result = await run.result(30)
    assert result.status == "completed", result.error
    return result.text


async def test_a_note_saved_in_one_conversation_is_known_in_the_next_but_not_to_others(
    server: FakeOpenAI, data_dir: Path
) -> None:
    hub = hub_for(server, data_dir, enable_tools=["memory"])
    remember = ToolCall("remember", json.dumps({"note": "Prefers answers in French"}))
    server.enqueue(Reply(chunks=(), tool_calls=(remember,)), Reply(chunks=("Noted.",)))
    desktop = Origin(surface="desktop")
    assert await answer(hub, "I prefer French, remember that", desktop, "notes") == "Noted."
    assert server.requests[0].tool_names >= {"remember", "forget"}
    assert "Prefers answers in French" not in instructions(server.requests[0])
    owner_notes = data_dir / "memory" / "main" / "owner.md"
    assert owner_notes.read_text() == "- Prefers answers in French\n"

    server.enqueue(Reply(chunks=("Bonjour !",)))
    await answer(hub, "hello", desktop)  # main, another conversation of the owner
    assert "1. Prefers answers in French" in instructions(server.requests[-1])

    server.enqueue(Reply(chunks=("Hi.",)))
    await answer(hub, "hello", dm("9"))  # someone else, in their own DM session
    assert "Prefers answers in French" not in instructions(server.requests[-1])

    forget = ToolCall("forget", json.dumps({"number": 1}))
    server.enqueue(Reply(chunks=(), tool_calls=(forget,)), Reply(chunks=("Forgotten.",)))
    await answer(hub, "forget my language", dm("1"))  # the owner, on Telegram: main
    assert owner_notes.read_text() == ""
    await hub.close()


async def test_a_refused_note_is_a_tool_error_the_model_reads(
    server: FakeOpenAI, data_dir: Path
) -> None:
    hub = hub_for(server, data_dir, enable_tools=["memory"])
    forget = ToolCall("forget", json.dumps({"number": 4}))
    server.enqueue(Reply(chunks=(), tool_calls=(forget,)), Reply(chunks=("Nothing to forget.",)))
    await answer(hub, "forget note 4", Origin(surface="desktop"))
    result = [m for m in server.requests[-1].messages if m["role"] == "tool"]
    assert "there is no note #4 (there are no notes)" in str(result[-1]["content"])
    await hub.close()


async def test_memory_is_off_unless_enabled(server: FakeOpenAI, data_dir: Path) -> None:
    hub = hub_for(server, data_dir)
    (data_dir / "memory" / "main").mkdir(parents=True)
    (data_dir / "memory" / "main" / "owner.md").write_text("- Likes jazz\n")
    server.enqueue(Reply(chunks=("Hi.",)))
    await answer(hub, "hello", Origin(surface="desktop"))
    assert "Likes jazz" not in instructions(server.requests[-1])
    assert not server.requests[-1].tool_names & {"remember", "forget"}
    await hub.close()


async def test_an_agent_without_tools_keeps_working(data_dir: Path) -> None:
    hub = Hub(data_dir, lambda: EchoModel(pieces=1))
    assert await answer(hub, "plain", Origin(surface="desktop")) == "plain"
    await hub.close()


async def test_unreadable_notes_are_named_to_the_model_and_the_turn_goes_on(
    server: FakeOpenAI, data_dir: Path
) -> None:
    hub = hub_for(server, data_dir, enable_tools=["memory"])
    (data_dir / "memory" / "main" / "owner.md").mkdir(parents=True)
    server.enqueue(Reply(chunks=("Hi.",)))
    assert await answer(hub, "hello", Origin(surface="desktop")) == "Hi."
    assert "the notes could not be read" in instructions(server.requests[-1])
    await hub.close()
