"""Approvals in Telegram (real python-telegram-bot against the local Bot API server): a tool
under `ask` is asked with buttons in the chat its run came from; the starter or the owner
decides there, nobody else; a decision on another surface updates the question; a forged
press changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

from hub.approvals import Approvals
from hub.model import Model
from hub.providers import ModelConfig, build_model
from hub.tools.config import ToolsConfig
from tests.fake_openai import FakeOpenAI, Reply, ToolCall
from tests.telegram_rig import Rig, telegram_rig, until

SHELL_CALL = ToolCall("shell", '{"command": "echo from-the-shell"}')


def shell_model(upstream: FakeOpenAI, approvals: Approvals, workspace: Path) -> Model:
    config = ModelConfig(
        spec="openai:gpt-test",
        openai_base_url=upstream.base_url,
        tooling=ToolsConfig(enable_tools=["shell"], workspace_root=workspace),
    )
    return build_model(config, approvals=approvals)


def question(rig: Rig, chat_id: int) -> tuple[int, list[str]]:
    """The bot's message with buttons in `chat_id`: its id and the buttons' data."""
    [(key, keyboard)] = [(k, v) for k, v in rig.api.keyboards.items() if k[0] == chat_id]
    rows: list[list[dict[str, str]]] = json.loads(json.dumps(keyboard))["inline_keyboard"]
    return key[1], [row[0]["callback_data"] for row in rows]


async def test_the_starter_approves_in_the_chat_and_a_stranger_cannot(data_dir: Path) -> None:
    approvals = Approvals(timeout=30)
    async with FakeOpenAI() as upstream:
        upstream.enqueue(
            Reply(chunks=(), tool_calls=(SHELL_CALL,)), Reply(chunks=("The shell said hi.",))
        )
        model = shell_model(upstream, approvals, data_dir / "workspace")
        async with telegram_rig(data_dir, model, approvals=approvals) as rig:
            await rig.api.user_says("run the shell", chat_id=1001)
            await until(lambda: bool(rig.api.keyboards), "the question with buttons", 60)
            message_id, data = question(rig, 1001)
            asked = rig.api.chat(1001).messages[message_id].text
            assert "shell" in asked and "echo from-the-shell" in asked
            assert [d.rsplit(":", 1)[1] for d in data] == ["approve", "approve_session", "deny"]
            # Someone else in the chat presses Approve: refused, still pending.
            await rig.api.user_presses(1001, message_id, data[0], user_id=666)
            await until(
                lambda: any("Only the owner" in t for t in rig.api.texts_in(1001)), "a refusal"
            )
            assert len(approvals.pending()) == 1
            # A forged press for an approval that does not exist changes nothing.
            await rig.api.user_presses(1001, message_id, "approval:ap-forged:approve")
            await until(
                lambda: sum("Only the owner" in t for t in rig.api.texts_in(1001)) == 2, "forged"
            )
            assert len(approvals.pending()) == 1
            # The user who started the run approves.
            await rig.api.user_presses(1001, message_id, data[0])
            await until(
                lambda: not rig.agent.busy and rig.agent.last_run is not None, "the run", 60
            )
            await rig.settle()
            await until(lambda: (1001, message_id) not in rig.api.keyboards, "buttons removed", 60)
            assert "✅ Approved by telegram:1001" in rig.api.chat(1001).messages[message_id].text
            assert len(rig.api.answered_queries) == 3
    tool_result = upstream.requests[1].messages[-1]
    assert "from-the-shell" in json.dumps(tool_result)
    assert "The shell said hi." in " ".join(rig.api.texts_in(1001))


async def test_a_decision_on_another_surface_updates_the_question(data_dir: Path) -> None:
    approvals = Approvals(timeout=30)
    async with FakeOpenAI() as upstream:
        upstream.enqueue(Reply(chunks=(), tool_calls=(SHELL_CALL,)), Reply(chunks=("Fine.",)))
        model = shell_model(upstream, approvals, data_dir / "workspace")
        async with telegram_rig(data_dir, model, approvals=approvals) as rig:
            await rig.api.user_says("run the shell", chat_id=1002)
            await until(lambda: bool(rig.api.keyboards), "the question with buttons", 60)
            message_id, _ = question(rig, 1002)
            [pending] = approvals.pending()
            approvals.decide(pending.approval_id, "deny", "web:web-laptop")
            await until(lambda: (1002, message_id) not in rig.api.keyboards, "buttons removed", 60)
            await rig.settle()
            assert "❌ Denied by web:web-laptop" in rig.api.chat(1002).messages[message_id].text
    assert "from-the-shell" not in json.dumps(upstream.requests[1].messages[-1])
