"""Agents that message each other: one asks another through its tools and gets the answer, the
recipient's run happens in a session of its own that every surface sees; inboxes persist and
survive a torn line; loops and floods are stopped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.config import load_settings
from app.hub_setup import build_hub
from hub.agent_mail import AgentMail, MailError
from hub.echo import EchoModel
from hub.events import AgentEvent, AgentStart, MessageEnd
from hub.hub import Hub
from hub.origin import Origin
from hub.sessions import MessageEntry
from tests.fake_openai import FakeOpenAI, Reply, ToolCall

CONFIG = """
[agents.main]
name = "Lead"
model = "openai:gpt-test"
enable_tools = ["agents"]

[agents.helper]
name = "Helper"
model = "echo"
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    for name in ("AGENTHUB_MODEL", "TELEGRAM_BOT_TOKEN", "AGENTHUB_ENABLE_TOOLS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AGENTHUB_DATA_DIR", str(data_dir))


async def test_an_agent_asks_another_and_the_owner_sees_both_runs(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (data_dir / "config.toml").write_text(CONFIG)
    question = '{"agent": "helper", "text": "what is the capital of France?"}'
    async with FakeOpenAI() as upstream:
        upstream.enqueue(
            Reply(chunks=(), tool_calls=(ToolCall("send_to_agent", question),)),
            Reply(chunks=("Helper answered.",)),
        )
        monkeypatch.setenv("OPENAI_BASE_URL", upstream.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-mail")
        hub, _, _ = build_hub(load_settings())
        seen: list[AgentEvent] = []
        for agent in hub.agents.values():
            agent.subscribe(seen.append, name="owner")
        try:
            hub.submit("main", "ask the helper", Origin(surface="desktop"))
            await hub.agent("main").wait_idle()
            await hub.agent("helper").wait_idle()
        finally:
            await hub.close()
    # The helper's answer came back to the asking agent as the tool's result.
    tool_result = upstream.requests[1].messages[-1]
    assert tool_result["role"] == "tool"
    assert "Reply from helper:" in str(tool_result["content"])
    assert "what is the capital of France?" in str(tool_result["content"])
    finals = [e for e in seen if isinstance(e, MessageEnd) and e.role == "assistant"]
    assert [(e.agent_id, e.session_key) for e in finals] == [
        ("helper", "agent:main"),
        ("main", "main"),
    ]
    starts = {e.agent_id for e in seen if isinstance(e, AgentStart)}
    assert starts == {"main", "helper"}
    helper_history = hub.agent("helper").history(session_key="agent:main")
    assert [e.role for e in helper_history if isinstance(e, MessageEntry)] == [
        "user",
        "assistant",
    ]
    assert hub.agent("helper").history() == []  # never the owner's main
    lines = (data_dir / "mail" / "helper.jsonl").read_text().splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["message", "read"]


@pytest.fixture
async def mail_hub(data_dir: Path) -> Hub:
    return Hub(data_dir, EchoModel, agent_ids=("a", "b", "c"))


async def test_inbox_delivery_persists_and_survives_a_torn_line(mail_hub: Hub) -> None:
    mail = AgentMail(mail_hub.data_dir, delivery={"b": "inbox"})
    mail.attach(mail_hub)
    try:
        first, reply = await mail.send("a", "b", "first", priority="normal")
        assert reply is None
        await mail.send("c", "b", "second, urgent", priority="urgent")
        path = mail_hub.data_dir / "mail" / "b.jsonl"
        with path.open("ab") as file:
            file.write(b'{"type": "message", "id": "torn')  # a crash mid-write
        reopened = AgentMail(mail_hub.data_dir, delivery={"b": "inbox"})
        reopened.attach(mail_hub)
        unread = reopened.messages("b", mark_read=False)
        assert [m.text for m in unread] == ["second, urgent", "first"]
        assert reopened.mark_read("b", [first.id]) == 1
        await reopened.send("a", "b", "third")  # appended after the torn line, readable
        again = AgentMail(mail_hub.data_dir, delivery={"b": "inbox"})
        again.attach(mail_hub)
        assert [m.text for m in again.messages("b")] == ["second, urgent", "third"]
        assert again.messages("b") == []
        assert len(again.messages("b", unread_only=False)) == 3
        assert mail_hub.agent("b").history() == []  # inbox delivery runs nothing
    finally:
        await mail_hub.close()


async def test_loops_floods_and_strangers_are_refused(mail_hub: Hub) -> None:
    mail = AgentMail(mail_hub.data_dir, max_hops=1, per_minute=2)
    mail.attach(mail_hub)
    try:
        with pytest.raises(MailError) as unknown:
            await mail.send("a", "zed", "hi")
        assert unknown.value.code == "unknown_agent" and "b, c" in unknown.value.message
        with pytest.raises(MailError):
            await mail.send("a", "a", "talking to myself")
        _, reply = await mail.send("a", "b", "ping", wait=True)
        assert reply is not None and reply.endswith("ping")
        # The run that message started may send one hop further, and no more.
        [run_of_b] = [r for r in mail._hops if mail._hops[r] == 0]
        message, _ = await mail.send("b", "c", "pong", from_run=run_of_b)
        assert message.hops == 1
        [run_of_c] = [r for r in mail._hops if mail._hops[r] == 1]
        with pytest.raises(MailError) as loop:
            await mail.send("c", "a", "and back", from_run=run_of_c)
        assert loop.value.code == "mail_loop"
        await mail.send("a", "c", "two")
        with pytest.raises(MailError) as flood:
            await mail.send("a", "c", "three")
        assert flood.value.code == "rate_limited"
        for agent in mail_hub.agents.values():
            await agent.wait_idle()
    finally:
        await mail_hub.close()
