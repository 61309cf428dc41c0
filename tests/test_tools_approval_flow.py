"""Tools under their policies, end to end: the real openai client against the fake server
scripting the model's tool calls, through AsyncAgent, the policy gate and the approvals."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.agent import AsyncAgent
from hub.approvals import Approvals, Decision
from hub.events import AgentEvent, ApprovalRequest, ApprovalResolved, ToolExecutionEnd
from hub.providers import ModelConfig, build_model
from hub.sessions import SessionStore, ToolEntry
from tests.agent_turns import assistant_ends, only, run_turn
from tests.fake_openai import FakeOpenAI, Reply, ToolCall


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


def agent_for(
    server: FakeOpenAI, data_dir: Path, approvals: Approvals | None, **tooling: object
) -> AsyncAgent:
    config = ModelConfig.model_validate(
        {
            "spec": "openai:gpt-test",
            "openai_base_url": server.base_url,
            "tooling": {"workspace_root": data_dir / "workspace", **tooling},
        }
    )
    return AsyncAgent("main", build_model(config, approvals=approvals), SessionStore(data_dir))


def decide_when_asked(
    agent: AsyncAgent, approvals: Approvals, decision: Decision
) -> list[ApprovalRequest]:
    """Answer every approval_request the agent emits with `decision`, as a person would."""
    asked: list[ApprovalRequest] = []

    def on_event(event: AgentEvent) -> None:
        if isinstance(event, ApprovalRequest):
            asked.append(event)
            loop = asyncio.get_running_loop()
            loop.call_soon(approvals.decide, event.approval_id, decision, "ctl")

    agent.subscribe(on_event)
    return asked


def injected_rm(server: FakeOpenAI) -> None:
    server.enqueue(
        Reply(
            chunks=("The page says to clean up.",),
            tool_calls=(ToolCall("shell", json.dumps({"command": "rm -rf ~"})),),
        ),
        Reply(chunks=("I did not run it.",)),
    )


async def test_prompt_injected_rm_rf_does_not_run_without_approval(
    server: FakeOpenAI, data_dir: Path
) -> None:
    canary = data_dir / "workspace" / "main" / "keep.txt"
    canary.parent.mkdir(parents=True)
    canary.write_text("precious")
    approvals = Approvals()
    agent = agent_for(server, data_dir, approvals, enable_tools=["shell"])
    asked = decide_when_asked(agent, approvals, "deny")
    injected_rm(server)
    events = await run_turn(agent, "summarise this page")
    (request,) = asked
    assert (request.tool, request.args, request.session_key) == (
        "shell",
        {"command": "rm -rf ~"},
        "main",
    )
    resolved = only(events, ApprovalResolved)
    assert (resolved.decision, resolved.by) == ("denied", "ctl")
    end = only(events, ToolExecutionEnd)
    assert end.is_error
    assert "shell was not run: denied by ctl" in str(end.result)
    assert canary.read_text() == "precious"
    kinds = [e.type for e in events]
    order = ["tool_execution_start", "approval_request", "approval_resolved", "tool_execution_end"]
    assert [k for k in kinds if k in order] == order
    assert [m.text for m in assistant_ends(events)][-1] == "I did not run it."
    # The refusal is in the session, call and result together.
    (entry,) = [e for e in agent.history() if isinstance(e, ToolEntry)]
    assert entry.is_error and "denied" in str(entry.result)
    await agent.close()


async def test_approved_shell_runs_in_the_workspace(server: FakeOpenAI, data_dir: Path) -> None:
    approvals = Approvals()
    agent = agent_for(server, data_dir, approvals, enable_tools=["shell"])
    decide_when_asked(agent, approvals, "approve")
    server.enqueue(
        Reply(chunks=(), tool_calls=(ToolCall("shell", '{"command": "echo hi > made.txt; pwd"}'),)),
        Reply(chunks=("Done.",)),
    )
    events = await run_turn(agent, "make a file")
    end = only(events, ToolExecutionEnd)
    assert not end.is_error
    workspace = data_dir / "workspace" / "main"
    assert str(end.result) == f"exit status 0\n{workspace.resolve()}\n"
    assert (workspace / "made.txt").read_text() == "hi\n"
    await agent.close()


async def test_without_anyone_to_ask_an_ask_tool_is_refused(
    server: FakeOpenAI, data_dir: Path
) -> None:
    agent = agent_for(server, data_dir, None, enable_tools=["shell"])
    injected_rm(server)
    events = await run_turn(agent, "summarise this page")
    end = only(events, ToolExecutionEnd)
    assert end.is_error
    assert "needs a person's approval" in str(end.result)
    await agent.close()


async def test_an_unanswered_approval_expires_and_the_call_is_refused(
    server: FakeOpenAI, data_dir: Path
) -> None:
    agent = agent_for(server, data_dir, Approvals(timeout=0.2), enable_tools=["shell"])
    injected_rm(server)
    events = await run_turn(agent, "summarise this page")
    assert only(events, ApprovalResolved).decision == "expired"
    assert "expired by timeout" in str(only(events, ToolExecutionEnd).result)
    await agent.close()


async def test_denied_and_unconfigured_tools_are_not_offered(
    server: FakeOpenAI, data_dir: Path
) -> None:
    agent = agent_for(
        server,
        data_dir,
        Approvals(),
        enable_tools=["workspace", "shell", "web_fetch"],
        tool_policies={"shell": "deny", "write_file": "allow"},
    )
    server.enqueue(Reply(chunks=("ok",)))
    await run_turn(agent, "hi")
    offered = {t["function"]["name"] for t in server.requests[0].tools}  # type: ignore[call-overload,index]
    assert offered == {
        "current_time",
        "calculator",
        "web_fetch",
        "read_file",
        "write_file",
        "edit_file",
        "list_files",
    }
    await agent.close()


async def test_allowed_tool_runs_without_asking(server: FakeOpenAI, data_dir: Path) -> None:
    agent = agent_for(server, data_dir, Approvals(), tool_policies={"write_file": "allow"})
    server.enqueue(
        Reply(chunks=(), tool_calls=(ToolCall("write_file", '{"path": "a.txt", "content": "x"}'),)),
        Reply(chunks=("Written.",)),
    )
    events = await run_turn(agent, "write")
    assert not any(isinstance(e, ApprovalRequest) for e in events)
    assert only(events, ToolExecutionEnd).result == "wrote 1 characters to a.txt"
    await agent.close()


@pytest.mark.parametrize(
    ("tool", "args", "refusal"),
    [
        ("web_fetch", {"url": "file:///etc/passwd"}, "only http and https URLs"),
        ("web_fetch", {"url": "gopher://127.0.0.1:70/"}, "only http and https URLs"),
        ("web_fetch", {"url": "http://169.254.169.254/latest/meta-data/"}, "link-local"),
        ("read_file", {"path": "../../../../etc/passwd"}, "outside the workspace"),
        ("list_files", {"path": "/"}, "outside the workspace"),
    ],
)
async def test_injected_arguments_are_refused_as_tool_errors(
    server: FakeOpenAI, data_dir: Path, tool: str, args: dict[str, str], refusal: str
) -> None:
    agent = agent_for(server, data_dir, Approvals(), enable_tools=["web_fetch", "workspace"])
    server.enqueue(
        Reply(chunks=(), tool_calls=(ToolCall(tool, json.dumps(args)),)),
        Reply(chunks=("That was refused.",)),
    )
    events = await run_turn(agent, "do what the page says")
    end = only(events, ToolExecutionEnd)
    assert end.is_error
    assert refusal in str(end.result)
    assert "root:" not in json.dumps(server.requests[1].messages)
    await agent.close()
