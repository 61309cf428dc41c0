"""Chat commands end to end: the real python-telegram-bot against the local Bot API server.
/model, /compact, /queue, /sessions, /usage and /status act on the chat's own session, and
a second user only ever sees and changes theirs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path

import pytest

from app.config import ConfigError, load_settings
from app.hub_setup import build_hub
from hub.agent import AsyncAgent
from hub.hub import AgentSetup
from hub.model import CompactionPlan, ModelPart, ModelTurn, TextDelta, UsageReport
from hub.scopes import ConversationConfig
from hub.sessions import HistoryEntry, SessionStore
from hub.usage import Price, PriceTable
from hub.usage_meter import UsageMeter
from tests.telegram_rig import Rig, telegram_rig, until

OWNER = 1001
GUEST = 2002
NEWCOMER = 3003


class NamedModel:
    """Answers `<name>: <text>` and reports 100 tokens in, 20 out."""

    def __init__(self, name: str) -> None:
        self._name = name
        self.summaries: list[str | None] = []

    @property
    def name(self) -> str:
        return self._name

    async def stream(self, turn: ModelTurn) -> AsyncGenerator[ModelPart, None]:
        self.summaries.append(turn.summary)
        yield TextDelta(f"{self._name}: {turn.text}")
        yield UsageReport(100, 20)


class KeepLastTwo:
    """Never asks to compact by itself; when asked, keeps the last two entries."""

    def reason(self, context: Sequence[HistoryEntry], usage: UsageReport | None) -> str | None:
        return None

    async def compact(
        self, context: Sequence[HistoryEntry], reason: str, previous_summary: str | None = None
    ) -> CompactionPlan:
        if len(context) <= 2:
            return CompactionPlan(first_kept_id=None, removed=0, kept=len(context))
        return CompactionPlan(
            first_kept_id=context[-2].id,
            removed=len(context) - 2,
            kept=2,
            summary=f"summary ({reason})",
        )


def owner_config() -> ConversationConfig:
    return ConversationConfig(owners=frozenset({f"telegram:{OWNER}"}))


def agents(alpha: NamedModel, *others: NamedModel, compactor: bool = True) -> list[AgentSetup]:
    return [AgentSetup("main", "main", alpha, KeepLastTwo() if compactor else None, others)]


async def command(rig: Rig, text: str, chat: int = OWNER) -> str:
    """Send `text` in a private chat; the bot's answer."""
    before = len(rig.api.replies_in(chat))
    await rig.api.user_says(text, chat_id=chat)
    await until(lambda: len(rig.api.replies_in(chat)) > before, f"the answer to {text}")
    await rig.settle()
    return rig.api.texts_in(chat)[before]


async def say(rig: Rig, text: str, chat: int = OWNER) -> str:
    """Send `text`; the reply of the run it starts."""
    before = len(rig.api.replies_in(chat))
    await rig.ask(text, chat_id=chat)
    await until(lambda: len(rig.api.replies_in(chat)) > before, f"the reply to {text}")
    await rig.settle()
    return rig.api.texts_in(chat)[-1]


async def test_model_switches_only_this_chats_session(data_dir: Path) -> None:
    alpha, beta = NamedModel("alpha"), NamedModel("beta")
    async with telegram_rig(
        data_dir, alpha, agents=agents(alpha, beta), conversations=owner_config()
    ) as rig:
        shown = await command(rig, "/model")
        assert shown.startswith("Model: alpha\n")
        assert "• alpha (now)" in shown and "• beta" in shown
        assert await command(rig, "/model beta") == "This conversation now uses beta."
        assert await say(rig, "hello") == "beta: hello"
        refused = await command(rig, "/model gamma")
        assert refused.startswith("[Error] no model 'gamma'")
        assert "alpha, beta" in refused
        # The other user's session still has the agent's model.
        assert await say(rig, "hi", chat=GUEST) == "alpha: hi"
        status = await command(rig, "/status")
        assert status.startswith("Model: beta\nConversation: ")
        assert "in session main" in status
        assert "Queue mode: queue" in status
        assert await command(rig, "/model alpha") == "This conversation now uses alpha."
        assert await say(rig, "back") == "alpha: back"
        assert rig.agent.models.for_session("main").name == "alpha"


async def test_a_model_switch_is_kept_across_new_and_restarts(data_dir: Path) -> None:
    alpha, beta = NamedModel("alpha"), NamedModel("beta")
    agent = AsyncAgent("main", alpha, SessionStore(data_dir), models=(beta,))
    agent.models.use("main", "beta")
    agent.models.use("other", "beta")
    agent.models.use("other", "alpha")
    agent.sessions.new("main")
    assert agent.models.for_session("main").name == "beta"
    await agent.close()
    again = AsyncAgent("main", alpha, SessionStore(data_dir), models=(beta,))
    assert again.models.for_session("main").name == "beta"
    assert again.models.for_session("other").name == "alpha"
    await again.close()
    # A kept choice that is no longer configured: the agent's own model answers.
    fewer = AsyncAgent("main", alpha, SessionStore(data_dir))
    assert fewer.models.for_session("main").name == "alpha"
    await fewer.close()


async def test_model_without_alternatives_says_how_to_configure_them(data_dir: Path) -> None:
    alpha = NamedModel("alpha")
    async with telegram_rig(data_dir, alpha, agents=agents(alpha)) as rig:
        shown = await command(rig, "/model")
        assert shown == ("Model: alpha\nNo other models are configured (`models` in config.toml).")


async def test_compact_folds_older_messages_into_a_summary(data_dir: Path) -> None:
    alpha = NamedModel("alpha")
    async with telegram_rig(
        data_dir, alpha, agents=agents(alpha), conversations=owner_config()
    ) as rig:
        assert await command(rig, "/compact") == (
            "Nothing to compact yet: the conversation is still short."
        )
        for text in ("one", "two", "three"):
            await say(rig, text)
        answer = await command(rig, "/compact")
        assert answer.startswith("Compacted: ")
        assert "2 kept" in answer
        compaction = rig.agent.sessions.current("main").last_compaction()
        assert compaction is not None and compaction.summary == "summary (requested)"
        await say(rig, "four")
        assert alpha.summaries[-1] == "summary (requested)"
        # The guest's conversation was not touched.
        await say(rig, "guest", chat=GUEST)
        assert rig.agent.sessions.current(f"telegram:dm:{GUEST}").last_compaction() is None


async def test_compact_without_a_compactor_is_refused_clearly(data_dir: Path) -> None:
    alpha = NamedModel("alpha")
    async with telegram_rig(data_dir, alpha, agents=agents(alpha, compactor=False)) as rig:
        answer = await command(rig, "/compact")
        assert answer == "[Error] this agent's model has no compaction configured"


async def test_queue_sets_the_mode_of_this_chats_session(data_dir: Path) -> None:
    alpha = NamedModel("alpha")
    async with telegram_rig(
        data_dir, alpha, agents=agents(alpha), conversations=owner_config()
    ) as rig:
        shown = await command(rig, "/queue")
        assert shown.startswith("Queue mode: queue. While a reply runs, a new message waits")
        assert "/queue collect: " in shown
        await say(rig, "hello")
        answer = await command(rig, "/queue collect")
        assert answer.startswith("Queue mode: collect.")
        assert rig.agent.sessions.mode("main") == "collect"
        assert (await command(rig, "/queue bogus")).startswith("There is no queue mode 'bogus'")
        # A user with no conversation yet, and the guest's own session untouched.
        assert "write a message first" in await command(rig, "/queue steer", chat=NEWCOMER)
        await say(rig, "hi", chat=GUEST)
        assert (await command(rig, "/queue interrupt", chat=GUEST)).startswith(
            "Queue mode: interrupt."
        )
        assert rig.agent.sessions.mode(f"telegram:dm:{GUEST}") == "interrupt"
        assert rig.agent.sessions.mode("main") == "collect"
        assert "Queue mode: interrupt" in await command(rig, "/status", chat=GUEST)


async def test_sessions_lists_only_the_users_own(data_dir: Path) -> None:
    alpha = NamedModel("alpha")
    async with telegram_rig(
        data_dir, alpha, agents=agents(alpha), conversations=owner_config()
    ) as rig:
        assert await command(rig, "/sessions", chat=GUEST) == "You have no conversations yet."
        await say(rig, "owner secret topic")
        await say(rig, "guest question", chat=GUEST)
        await say(rig, "newcomer question", chat=NEWCOMER)
        mine = await command(rig, "/sessions", chat=GUEST)
        assert mine.startswith("Your conversations (1):")
        assert f"telegram:dm:{GUEST}" in mine and "← this chat" in mine
        for leak in ("main", "owner secret", f"telegram:dm:{NEWCOMER}", "newcomer"):
            assert leak not in mine
        everything = await command(rig, "/sessions")
        assert everything.startswith("Your conversations (3):")
        assert "owner secret topic — main" in everything


async def test_usage_shows_this_session_and_today(data_dir: Path) -> None:
    alpha = NamedModel("alpha")
    async with telegram_rig(
        data_dir, alpha, agents=agents(alpha), conversations=owner_config()
    ) as rig:
        prices = PriceTable({"alpha": Price(input=1.0, output=2.0)})
        meter = UsageMeter(rig.hub, data_dir / "usage.jsonl", prices)
        await meter.start()
        try:
            await say(rig, "one")
            await say(rig, "two")
            await say(rig, "guest", chat=GUEST)
            await until(lambda: (data_dir / "usage.jsonl").exists(), "the usage ledger")
            await until(
                lambda: len((data_dir / "usage.jsonl").read_text().splitlines()) == 3,
                "three usage records",
            )
            owner = await command(rig, "/usage")
            assert owner.splitlines() == [
                "This conversation: 240 tokens (200 in, 40 out) in 2 replies, $0.0003",
                "This conversation today: 240 tokens (200 in, 40 out) in 2 replies, $0.0003",
                "Today, every conversation: 360 tokens (300 in, 60 out) in 3 replies, $0.0004",
            ]
            guest = await command(rig, "/usage", chat=GUEST)
            assert guest.splitlines() == [
                "This conversation: 120 tokens (100 in, 20 out) in 1 replies, $0.0001",
                "This conversation today: 120 tokens (100 in, 20 out) in 1 replies, $0.0001",
            ]
            status = await command(rig, "/status", chat=GUEST)
            assert status.endswith(
                "Usage in this conversation: 120 tokens (100 in, 20 out) in 1 replies, $0.0001"
            )
        finally:
            await meter.stop()


def test_models_key_builds_the_models_a_chat_may_switch_to(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-models")
    (data_dir / "config.toml").write_text(
        'model = "echo"\nmodels = ["echo", "openai:gpt-4o-mini"]\n'
    )
    monkeypatch.setenv("AGENTHUB_DATA_DIR", str(data_dir))
    hub, _, _ = build_hub(load_settings())
    assert list(hub.default_agent.models) == ["echo", "openai:gpt-4o-mini"]
    (data_dir / "config.toml").write_text(
        'model = "echo"\nmodels = ["openai:gpt-4o-mini"]\n[agents.main]\nmodels = ["gpt4"]\n'
    )
    with pytest.raises(ConfigError) as refused:
        build_hub(load_settings())
    assert "agents.main.models: gpt4: unknown model spec 'gpt4'" in str(refused.value)


class HeldCompactor(KeepLastTwo):
    """Compacts only once `release` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def compact(
        self, context: Sequence[HistoryEntry], reason: str, previous_summary: str | None = None
    ) -> CompactionPlan:
        self.started.set()
        await self.release.wait()
        return await super().compact(context, reason, previous_summary)


async def test_a_slow_compaction_keeps_other_chats_answered(data_dir: Path) -> None:
    alpha = NamedModel("alpha")
    compactor = HeldCompactor()
    setups = [AgentSetup("main", "main", alpha, compactor)]
    async with telegram_rig(data_dir, alpha, agents=setups, conversations=owner_config()) as rig:
        for text in ("one", "two", "three"):
            await say(rig, text)
        await rig.api.user_says("/compact", chat_id=OWNER)
        await until(compactor.started.is_set, "the compaction to start")
        # Another chat is answered while the owner's session compacts.
        assert await say(rig, "meanwhile", chat=GUEST) == "alpha: meanwhile"
        assert await command(rig, "/status") != ""
        compactor.release.set()
        await until(
            lambda: any(t.startswith("Compacted: ") for t in rig.api.texts_in(OWNER)),
            "the compaction's answer",
        )
