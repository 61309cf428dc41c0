"""Conversations: session keys from the origin (owners, dm_scope, groups, topics, identity
links), Hub.submit per session with lastRoute, visibility of every session operation, and bad
input (malformed keys, link loops, forbidden sessions)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest
from pydantic import JsonValue, ValidationError

from hub.attachments import Attachment
from hub.conversations import ForbiddenSessionError, UnknownSessionError
from hub.echo import EchoModel
from hub.errors import CodedError, describe_validation
from hub.events import AgentEvent, AgentStart, MessageEnd
from hub.hub import Hub
from hub.model import ModelPart, ModelTurn, TextDelta
from hub.origin import ChannelRoute, Origin
from hub.scopes import (
    ConversationConfig,
    InvalidSessionKeyError,
    Viewer,
    channel_session_key,
    check_session_key,
)
from hub.sessions import MessageEntry
from hub.transcribe import Transcriber
from tests.fake_openai import FakeOpenAI

OWNER_CONFIG = ConversationConfig(
    owners=frozenset({"telegram:111"}),
    identity_links={"alice": ["telegram:222", "web:d-alice"]},
    guest_devices=frozenset({"d-alice", "d-bob"}),
)
OWNER = Viewer(surface="desktop", owner=True)
ALICE_WEB = Viewer(surface="web", device_id="d-alice", identity="web:d-alice")
BOB_WEB = Viewer(surface="web", device_id="d-bob", identity="web:d-bob")


def dm(user: str, channel: str = "telegram") -> ChannelRoute:
    return ChannelRoute(channel=channel, chat_id=user, user_id=user, chat_kind="private")


def group(chat: str, user: str, topic: str | None = None) -> ChannelRoute:
    return ChannelRoute(
        channel="telegram", chat_id=chat, user_id=user, chat_kind="group", thread_id=topic
    )


def channel(route: ChannelRoute) -> Origin:
    return Origin(surface="channel", route=route)


# -- the rule set -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "route", "key"),
    [
        (OWNER_CONFIG, dm("111"), "main"),
        (OWNER_CONFIG, dm("333"), "telegram:dm:333"),
        (OWNER_CONFIG, group("-100", "111"), "telegram:group:-100"),
        (OWNER_CONFIG, group("-100", "333", topic="5"), "telegram:group:-100:topic:5"),
        (OWNER_CONFIG.model_copy(update={"dm_scope": "per-peer"}), dm("222"), "peer:alice"),
        (OWNER_CONFIG.model_copy(update={"dm_scope": "per-peer"}), dm("333"), "peer:telegram:333"),
        (OWNER_CONFIG.model_copy(update={"dm_scope": "main"}), dm("333"), "main"),
        # No owners configured: the single-user behaviour (DMs in main), groups still apart.
        (ConversationConfig(), dm("333"), "main"),
        (ConversationConfig(), group("-7", "333"), "telegram:group:-7"),
        # Linked to an owner id: the owner too.
        (
            ConversationConfig(
                owners=frozenset({"web:desk"}), identity_links={"me": ["web:desk", "telegram:9"]}
            ),
            dm("9"),
            "main",
        ),
    ],
    ids=[
        "owner-dm",
        "guest-dm",
        "owner-in-group",
        "forum-topic",
        "per-peer-linked",
        "per-peer-unlinked",
        "scope-main",
        "no-owners-dm",
        "no-owners-group",
        "linked-owner",
    ],
)
def test_session_key_rules(config: ConversationConfig, route: ChannelRoute, key: str) -> None:
    assert channel_session_key(route, config) == key


def test_the_default_scope_once_owners_are_set_keeps_people_apart() -> None:
    config = ConversationConfig(owners=frozenset({"telegram:1"}))
    assert config.scope == "per-channel-peer"
    assert ConversationConfig().scope == "main"


@pytest.mark.parametrize(
    ("values", "why"),
    [
        (
            {"identity_links": {"a": ["telegram:1"], "b": ["telegram:1"]}},
            "linked to both 'a' and 'b'",
        ),
        ({"identity_links": {"a": ["fax:1"]}}, "unknown surface"),
        ({"identity_links": {"a": ["telegram"]}}, "is not an identity"),
        ({"identity_links": {"a b": ["telegram:1"]}}, "is not a name"),
        ({"owners": ["pager:1"]}, "unknown surface"),
        ({"dm_scope": "everyone"}, "dm_scope"),
    ],
    ids=["loop", "unknown-surface", "no-id", "bad-name", "bad-owner", "bad-scope"],
)
def test_bad_conversation_config_is_a_clear_error(values: dict[str, object], why: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ConversationConfig.model_validate(values)
    assert why in describe_validation(caught.value)


@pytest.mark.parametrize("key", ["", "../etc", "a b", "x" * 161, ":lead", "é", "a/b"])
def test_malformed_session_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidSessionKeyError) as caught:
        check_session_key(key)
    assert caught.value.code == "invalid_session_key"


# -- Hub.submit -----------------------------------------------------------------------------


class GatedEcho:
    """Echo, holding each run until its session's gate opens."""

    def __init__(self) -> None:
        self.gates: dict[str, asyncio.Event] = {}
        self.running: set[str] = set()
        self.most_at_once = 0
        self.changed = asyncio.Event()

    @property
    def name(self) -> str:
        return "gated"

    async def stream(self, turn: ModelTurn) -> AsyncGenerator[ModelPart, None]:
        gate = self.gates.setdefault(turn.text.split()[0], asyncio.Event())
        self.running.add(turn.run_id)
        self.most_at_once = max(self.most_at_once, len(self.running))
        self.changed.set()
        try:
            await gate.wait()
            yield TextDelta(turn.text)
        finally:
            self.running.discard(turn.run_id)


def make_hub(data_dir: Path, model: object = None, **config: object) -> Hub:
    settings = OWNER_CONFIG.model_copy(update=config)
    return Hub(data_dir, lambda: model or EchoModel(pieces=2), conversations=settings)  # type: ignore[arg-type, return-value]


async def test_submit_routes_each_origin_to_its_session(data_dir: Path) -> None:
    hub = make_hub(data_dir)
    agent = hub.default_agent
    events: list[AgentEvent] = []
    agent.subscribe(events.append)
    hub.submit("main", "from the owner on telegram", channel(dm("111")))
    hub.submit("main", "from a guest", channel(dm("333")))
    hub.submit("main", "in a group", channel(group("-100", "333")))
    hub.submit("main", "from the desk", Origin(surface="desktop"))
    hub.submit("main", "a web side chat", Origin(surface="web", device_id="d-1"), session_key="x")
    await agent.wait_idle()
    ends = [(e.session_key, e.text) for e in events if isinstance(e, MessageEnd)]
    assert ("main", "from the owner on telegram") in ends
    assert ("telegram:dm:333", "from a guest") in ends
    assert ("telegram:group:-100", "in a group") in ends
    assert ("main", "from the desk") in ends
    assert ("x", "a web side chat") in ends
    assert [e.text for e in agent.history() if isinstance(e, MessageEntry)][::2] == [
        "from the owner on telegram",
        "from the desk",
    ]
    await hub.close()


async def test_last_route_follows_main_only(data_dir: Path) -> None:
    hub = make_hub(data_dir)
    hub.submit("main", "owner in main", channel(dm("111")))
    assert hub.last_route.route == dm("111")
    hub.submit("main", "a guest elsewhere", channel(dm("333")))
    hub.submit("main", "a group elsewhere", channel(group("-100", "111")))
    hub.submit("main", "web elsewhere", Origin(surface="web", device_id="d-1"), session_key="w")
    assert hub.last_route.route == dm("111")
    hub.submit("main", "back at the desk", Origin(surface="desktop"))
    assert hub.last_route.route is None
    await hub.close()


async def test_sessions_run_concurrently_under_the_bound_and_serially_within(
    data_dir: Path,
) -> None:
    model = GatedEcho()
    hub = make_hub(data_dir, model, max_concurrent_runs=2)
    agent = hub.default_agent
    desk = Origin(surface="desktop")
    first = hub.submit("main", "a one", desk, session_key="a")
    hub.submit("main", "a two", desk, session_key="a")
    hub.submit("main", "b one", desk, session_key="b")
    hub.submit("main", "c one", desk, session_key="c")
    while len(model.running) < 2:
        model.changed.clear()
        await model.changed.wait()
    # a and b run; a's second turn and c wait (c for a slot): both count as queued.
    assert agent.running(first)
    assert agent.queued == 2
    page = hub.sessions.list(agent, OWNER)
    assert {s.session_key: s.busy for s in page.sessions} == {"a": True, "b": True, "c": True}
    for gate in ("a", "b", "c"):
        model.gates.setdefault(gate, asyncio.Event()).set()
    await agent.wait_idle()
    assert model.most_at_once == 2
    texts = [e.text for e in agent.history(session_key="a") if e.role == "user"]  # type: ignore[union-attr]
    assert texts == ["a one", "a two"]
    await hub.close()


async def test_a_voice_note_to_a_forbidden_session_is_refused_before_transcription(
    data_dir: Path,
) -> None:
    """A guest who may not write to a session costs no speech-to-text request."""
    voice = Attachment(name="v.ogg", media_type="audio/ogg", data=b"OggS voice")
    async with FakeOpenAI() as openai:
        hub = make_hub(data_dir)
        hub.transcriber = Transcriber("openai:whisper-1", api_key=None, base_url=openai.base_url)
        try:
            bob = Origin(surface="web", device_id="d-bob")
            with pytest.raises(ForbiddenSessionError):
                await hub.submit_heard("main", "", bob, attachments=[voice])
            assert openai.transcriptions == []
            submitted = await hub.submit_heard(
                "main", "", Origin(surface="desktop"), attachments=[voice]
            )
            await hub.default_agent.wait_idle()
            assert submitted.transcripts == (openai.transcript,)
            assert len(openai.transcriptions) == 1
            (user,) = [e for e in hub.default_agent.history() if e.role == "user"]  # type: ignore[union-attr]
            assert user.text == openai.transcript  # type: ignore[union-attr]
        finally:
            await hub.transcriber.close()
            await hub.close()


async def test_refusals_for_guests_leak_nothing(data_dir: Path) -> None:
    hub = make_hub(data_dir)
    agent = hub.default_agent
    hub.submit("main", "owner secret", Origin(surface="desktop"))
    # A guest cannot pick a key; it gets a new web session of its own.
    with pytest.raises(ForbiddenSessionError):
        hub.submit("main", "mine?", Origin(surface="web", device_id="d-alice"), session_key="y")
    x = (await hub.sessions.new(agent, ALICE_WEB)).session_key
    hub.submit("main", "alice's own", Origin(surface="web", device_id="d-alice"), session_key=x)
    await agent.wait_idle()
    # Bob, a guest device, may not write to main nor read it; an existing and a missing
    # session are refused alike.
    with pytest.raises(ForbiddenSessionError):
        hub.submit("main", "let me in", Origin(surface="web", device_id="d-bob"))
    refusals = []
    for key in ("main", x, "never-made"):
        with pytest.raises(CodedError) as caught:
            hub.sessions.history(agent, BOB_WEB, key)
        refusals.append((caught.value.code, str(caught.value).replace(key, "K")))
    assert len(set(refusals)) == 1
    assert refusals[0][0] == "forbidden"
    assert "owner secret" not in str(refusals)
    # Bob lists nothing; Alice lists only her session; the owner lists all.
    assert hub.sessions.list(agent, BOB_WEB).sessions == []
    assert [s.session_key for s in hub.sessions.list(agent, ALICE_WEB).sessions] == [x]
    assert {s.session_key for s in hub.sessions.list(agent, OWNER).sessions} == {"main", x}
    # Alice's Telegram id is linked to her web device: she sees the same session there.
    alice_tg = Viewer(surface="channel", identity="telegram:222")
    assert [s.session_key for s in hub.sessions.list(agent, alice_tg).sessions] == [x]
    for bad in ("", "a b", "../x"):
        with pytest.raises(InvalidSessionKeyError):
            hub.sessions.history(agent, OWNER, bad)
        with pytest.raises(InvalidSessionKeyError):
            hub.submit("main", "x", Origin(surface="desktop"), session_key=bad)
    with pytest.raises(UnknownSessionError):
        hub.sessions.history(agent, OWNER, "never-made")
    with pytest.raises(ForbiddenSessionError):
        hub.submit("main", "pick my chat", channel(dm("333")), session_key="main")
    await hub.close()


async def test_session_operations(data_dir: Path) -> None:
    hub = make_hub(data_dir)
    agent = hub.default_agent
    desk = Origin(surface="desktop")
    long_first = "  What is   the weather like on the far side of the moon today, and tomorrow?  "
    hub.submit("main", long_first, desk)
    await agent.wait_idle()
    [main] = hub.sessions.list(agent, OWNER).sessions
    assert main.title == "What is the weather like on the far side of the moon today,…"
    assert (main.messages, main.unread, main.busy) == (2, 2, False)

    # New without a key: a new web session; with a key: a fresh session, the old readable.
    created = await hub.sessions.new(agent, ALICE_WEB)
    assert created.session_key.startswith("web:")
    assert [s.session_key for s in hub.sessions.list(agent, ALICE_WEB).sessions] == [
        created.session_key
    ]
    old_id = main.session_id
    fresh = await hub.sessions.new(agent, OWNER, "main")
    assert fresh.session_id != old_id
    assert hub.sessions.history(agent, OWNER, "main").entries == []
    old = hub.sessions.history(agent, OWNER, "main", session_id=old_id)
    assert [e.text for e in old.entries] == [long_first, long_first]  # type: ignore[union-attr]
    with pytest.raises(UnknownSessionError):
        hub.sessions.history(agent, OWNER, "main", session_id="nope")

    # Rename, archive (hidden unless asked), unarchived by a new message.
    hub.submit("main", "side topic", desk, session_key="side")
    await agent.wait_idle()
    assert hub.sessions.rename(agent, OWNER, "side", "  Holiday plans ").title == "Holiday plans"
    hub.sessions.archive(agent, OWNER, "side")
    assert "side" not in {s.session_key for s in hub.sessions.list(agent, OWNER).sessions}
    archived = hub.sessions.list(agent, OWNER, archived=True).sessions
    assert [s.session_key for s in archived] == ["side"]
    with pytest.raises(CodedError) as caught:
        hub.sessions.archive(agent, OWNER, "main")
    assert caught.value.code == "forbidden"
    hub.submit("main", "back to it", desk, session_key="side")
    await agent.wait_idle()
    side = next(s for s in hub.sessions.list(agent, OWNER).sessions if s.session_key == "side")
    assert side.title == "Holiday plans"  # a rename sticks
    assert side.unread == 4

    # Read markers are per viewer; history by seq range.
    entries = hub.sessions.history(agent, OWNER, "side").entries
    assert hub.sessions.mark_read(agent, OWNER, "side", entries[1].seq).unread == 2
    assert hub.sessions.mark_read(agent, OWNER, "side", entries[0].seq).unread == 2  # no going back
    phone = Viewer(surface="web", device_id="phone", owner=True)
    assert (
        next(s for s in hub.sessions.list(agent, phone).sessions if s.session_key == "side").unread
        == 4
    )
    assert hub.sessions.mark_read(agent, OWNER, "side", 10**9).unread == 0
    later = hub.sessions.history(agent, OWNER, "side", after=entries[1].seq, limit=1)
    assert [e.seq for e in later.entries] == [entries[-1].seq]
    await hub.close()


async def test_pagination_over_thousands_of_sessions(data_dir: Path) -> None:
    hub = make_hub(data_dir)
    agent = hub.default_agent
    for n in range(1500):
        agent.sessions.new(f"s-{n}")
    total = hub.sessions.list(agent, OWNER, limit=1).total
    assert total == 1500
    seen: list[str] = []
    offset = 0
    while offset < total:
        page = hub.sessions.list(agent, OWNER, offset=offset, limit=500)
        seen += [s.session_key for s in page.sessions]
        offset += 500
    assert sorted(seen) == sorted(f"s-{n}" for n in range(1500))
    assert agent.sessions.loaded_count <= 256
    assert hub.sessions.list(agent, BOB_WEB).total == 0
    await hub.close()


# -- through the request table --------------------------------------------------------------


async def test_session_requests_through_the_table(data_dir: Path) -> None:
    from hub.requests import Caller, RequestHost, dispatch

    hub = make_hub(data_dir)
    host = RequestHost(access=hub.access, health=hub.health, hub=hub)
    owner = Caller(surface="desktop", owner=True)
    guest = Caller(surface="web", device_id="d-bob")
    hub.submit("main", "owner only", Origin(surface="desktop"))
    await hub.default_agent.wait_idle()

    listed = await dispatch(host, owner, "sessions.list", {"agentId": "main"})
    assert [s["sessionKey"] for s in listed.model_dump(mode="json")["sessions"]] == ["main"]
    assert (await dispatch(host, guest, "sessions.list", {"agentId": "main"})).model_dump()[
        "sessions"
    ] == []
    refused: list[tuple[str, dict[str, JsonValue]]] = [
        ("history", {"agentId": "main", "sessionKey": "main"}),
        ("sessions.rename", {"agentId": "main", "sessionKey": "main", "title": "mine"}),
        ("sessions.mark_read", {"agentId": "main", "sessionKey": "main", "seq": 1}),
        ("abort", {"agentId": "main", "sessionKey": "main"}),
    ]
    for method, params in refused:
        with pytest.raises(CodedError) as caught:
            await dispatch(host, guest, method, params)
        assert caught.value.code == "forbidden", method
        assert "owner only" not in str(caught.value)
    with pytest.raises(CodedError) as caught:
        await dispatch(host, owner, "history", {"agentId": "main", "sessionKey": "no such"})
    assert caught.value.code == "invalid_session_key"
    created = await dispatch(host, guest, "sessions.new", {"agentId": "main"})
    key = created.model_dump()["sessionKey"]
    history = await dispatch(host, guest, "history", {"agentId": "main", "sessionKey": key})
    assert history.model_dump()["entries"] == []
    moded = await dispatch(
        host,
        owner,
        "sessions.mode",
        {"agentId": "main", "sessionKey": key, "mode": "collect"},
    )
    assert moded.model_dump()["mode"] == "collect"
    assert hub.default_agent.lane(key).mode == "collect"
    await hub.close()


async def test_a_chat_session_answers_in_its_chat_whoever_writes(data_dir: Path) -> None:
    hub = make_hub(data_dir)
    agent = hub.default_agent
    starts: list[AgentEvent] = []
    agent.subscribe(starts.append)
    guest_chat = dm("333")
    hub.submit(
        "main", "hello bot", channel(guest_chat.model_copy(update={"reply_to_message_id": "9"}))
    )
    hub.submit("main", "owner in main", channel(dm("111")))
    await agent.wait_idle()
    # The owner answers the guest's chat from the desktop: the reply belongs in that chat.
    run = hub.submit(
        "main", "hi from the owner", Origin(surface="desktop"), session_key="telegram:dm:333"
    )
    await agent.wait_idle()
    start = next(e for e in starts if isinstance(e, AgentStart) and e.run_id == run)
    assert start.origin.surface == "desktop"
    assert start.origin.route == guest_chat  # the chat, replying to no message in particular
    assert hub.last_route.route == dm("111")  # main's lastRoute is untouched
    # A desktop write in main or a web session stays there.
    plain = hub.submit("main", "at the desk", Origin(surface="desktop"), session_key="w")
    await agent.wait_idle()
    start = next(e for e in starts if isinstance(e, AgentStart) and e.run_id == plain)
    assert start.origin.route is None
    await hub.close()
    again = make_hub(data_dir)
    assert again.default_agent.sessions.chat_of("telegram:dm:333") == guest_chat
    await again.close()
