"""Configured agents: `[agents.<id>]` with their own models and prompts, `[[bindings]]` that
route chats to them (first match wins, else the default agent), and clear errors for
configurations that name what does not exist."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app import ctl
from app.compose import build
from app.config import ConfigError, load_settings
from channels.base import ChannelPlugin
from channels.manager import ChannelManager
from hub.bindings import Binding, bound_agent
from hub.origin import ChannelRoute
from hub.requests import Caller, RequestHost, dispatch
from hub.requests.agents import BindingsAnswer
from tests.fake_openai import FakeOpenAI, Reply
from tests.test_channels_manager import MemoryChat

OWNER = Caller(surface="control", owner=True)

CONFIG = """
[agents.main]
name = "Echo"
model = "echo"

[agents.work]
name = "Work assistant"
model = "openai:gpt-test"
system_prompt_file = "work-prompt.md"

[[bindings]]
agent = "work"
channel = "memory"
chat = "c2"
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    for name in ("AGENTHUB_MODEL", "TELEGRAM_BOT_TOKEN", "AGENTHUB_OWNERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AGENTHUB_DATA_DIR", str(data_dir))


def route(**fields: str) -> ChannelRoute:
    return ChannelRoute(**{"channel": "telegram", "chat_id": "1", "user_id": "9", **fields})


def test_first_matching_binding_wins_else_the_default() -> None:
    rules = [
        Binding(agent="ops", channel="telegram", chat="-100", topic="7"),
        Binding(agent="work", channel="telegram", chat="-100"),
        Binding(agent="family", user="42"),
    ]
    assert bound_agent(rules, route(chat_id="-100", thread_id="7"), "main") == "ops"
    assert bound_agent(rules, route(chat_id="-100", thread_id="8"), "main") == "work"
    assert bound_agent(rules, route(user_id="42"), "main") == "family"
    assert bound_agent(rules, route(), "main") == "main"


async def test_two_agents_with_their_own_models_and_prompts_serve_chats_by_binding(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (data_dir / "config.toml").write_text(CONFIG)
    (data_dir / "work-prompt.md").write_text("You answer work questions tersely.\n")
    async with FakeOpenAI(default=Reply(chunks=("Quarterly", " numbers"))) as upstream:
        monkeypatch.setenv("OPENAI_BASE_URL", upstream.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-agents")
        runtime = build(load_settings(), "serve")
        hub = runtime.hub
        assert hub is not None
        chat = MemoryChat()
        manager = ChannelManager(hub, typing_interval=0.02)
        plugin: ChannelPlugin = chat
        manager.register(plugin)
        await manager.start()
        try:
            await chat.say("hello echo", chat="c1", user="u1")
            await chat.say("how are the numbers?", chat="c2", user="u2")
            for agent in hub.agents.values():
                await agent.wait_idle()
            async with asyncio.timeout(10):
                await manager.outbox.drain()
        finally:
            await manager.stop()
            await hub.close()
    assert "".join(chat.texts("c1")) == "hello echo"
    assert "".join(chat.texts("c2")) == "Quarterly numbers"
    [request] = upstream.requests
    assert request.model == "gpt-test"
    assert request.messages[0] == {
        "role": "system",
        "content": "You answer work questions tersely.",
    }
    info = {a.agent_id: (a.name, a.model) for a in hub.agents_info()}
    assert info == {"main": ("Echo", "echo"), "work": ("Work assistant", "openai:gpt-test")}
    host = RequestHost(access=hub.access, health=hub.health, hub=hub)
    answer = await dispatch(host, OWNER, "bindings.list", {})
    assert isinstance(answer, BindingsAnswer)
    assert ctl.render("bindings.list", answer.model_dump(mode="json")) == (
        "1. channel=memory chat=c2 -> agent work\notherwise: agent main"
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            '[agents.main]\nmodel = "echo"\n[[bindings]]\nagent = "nobody"\n',
            "bindings: no agent 'nobody' (configured: main)",
        ),
        ('[[bindings]]\nagent = "main"\ncolour = "blue"\n', "bindings"),
        (
            '[agents.main]\nmcp_servers = ["ghost"]\n',
            "agents.main.mcp_servers: no [[mcp_servers]] named 'ghost'",
        ),
        ('[agents.main]\nsystem_prompt_file = "missing.md"\n', "agents.main: system_prompt_file"),
        ('[agents.main]\nmodel = "gpt4"\n', "agents.main.model: unknown model spec 'gpt4'"),
        ('[agents."bad id"]\nmodel = "echo"\n', "agents"),
    ],
)
def test_configurations_naming_what_does_not_exist_are_refused(
    data_dir: Path, config: str, message: str
) -> None:
    (data_dir / "config.toml").write_text(config)
    with pytest.raises(ConfigError) as refused:
        build(load_settings(), "serve")
    assert message in str(refused.value)
